package tokenauth

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokenmq/tokenmq/token"
)

// Client is the adapter's side of one connection: how the core's
// decisions reach the broker. The core calls Notify, Disconnect and Close
// from its own goroutines (timers, the revocation follower), never while
// holding a lock of its own.
type Client interface {
	// Notify sends n to this connection only, as a QoS 0 PUBLISH that is
	// never routed or retained.
	Notify(n Notice)
	// Disconnect ends the connection for cause: an MQTT 5 client gets
	// DISCONNECT with cause.Reason(), an MQTT 3.1.1 one a closed socket.
	Disconnect(cause Cause)
	// Close closes the connection at once; the core calls it when
	// Disconnect has not returned within a second (a stuck socket).
	Close(cause Cause)
	// Restrict removes the connection's subscriptions that r does not
	// cover: after a renewal and when a session resumes with inherited
	// subscriptions.
	Restrict(r *Rights)
}

// Cause is why the core ends a connection.
type Cause uint8

// Causes of a kick (SPEC §3.4, §3.5).
const (
	CauseInvalid Cause = iota + 1 // an invalid or malformed renewal
	CauseExpired                  // a token the connection relies on expired
	CauseRevoked                  // a token the connection relies on was revoked
	CauseKicked                   // KickClient: an administrator ended it; its session is discarded
)

// InvalidCode is the code of $SYS/tokenInvalidNotice for the cause.
func (c Cause) InvalidCode() int {
	switch c {
	case CauseExpired:
		return InvalidCodeExpired
	case CauseRevoked:
		return InvalidCodeRevoked
	}
	return InvalidCodeInvalid
}

// Reason is the MQTT 5 DISCONNECT reason code for the cause.
func (c Cause) Reason() ReasonCode {
	switch c {
	case CauseExpired:
		return ReasonMaxConnectTime
	case CauseRevoked, CauseKicked:
		return ReasonAdministrativeAction
	}
	return ReasonNotAuthorized
}

// String names the cause for metrics: expired, revoked, invalid_renewal.
func (c Cause) String() string {
	switch c {
	case CauseExpired:
		return "expired"
	case CauseRevoked:
		return "revoked"
	case CauseKicked:
		return "kicked"
	}
	return "invalid_renewal"
}

// held is a token a session relies on, with its timers.
type held struct {
	Held
	notice Timer
	expire Timer
}

// Session is one connection's token state: the tokens it holds, its
// rights, its expiry timers. Adapters key it by their broker's connection
// object, never by client ID (a takeover is a new connection, so a new
// Session).
type Session struct {
	a           *Authority
	client      Client
	clientID    string
	remote      string
	form        Form
	accessKeyID string // FormApsara: tokens must be issued by this key
	protocol    byte
	persistent  bool
	since       time.Time
	conn        uint64 // number in the Authority's reports; 0 until tracked

	rights     atomic.Pointer[Rights] // read on every publish and delivery
	authMethod atomic.Bool            // the client uses MQTT 5's Authentication Method "tokenmq"
	closing    atomic.Bool

	mu          sync.Mutex
	held        []*held
	established bool
	pendingKick func() // a kick requested before the CONNACK was sent
}

func newSession(a *Authority, client Client, req ConnectRequest, creds Credentials, hs []Held) *Session {
	s := &Session{a: a, client: client, clientID: req.ClientID, remote: req.Remote,
		form: creds.Form, accessKeyID: creds.AccessKeyID, held: make([]*held, len(hs)),
		protocol: req.ProtocolVersion, persistent: req.Persistent, since: a.cfg.Clock.Now()}
	for i, h := range hs {
		s.held[i] = &held{Held: h}
	}
	s.rights.Store(RightsOf(hs))
	return s
}

// Rights returns what the connection may do now. It is lock-free, for the
// hot path.
func (s *Session) Rights() *Rights { return s.rights.Load() }

// Closing reports whether the connection is ending (kicked, or gone).
func (s *Session) Closing() bool { return s.closing.Load() }

// ClientID returns the connection's client ID.
func (s *Session) ClientID() string { return s.clientID }

// TokenIDs returns the IDs of the tokens the session holds.
func (s *Session) TokenIDs() []token.ID {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]token.ID, 0, len(s.held))
	for _, h := range s.held {
		ids = append(ids, h.Grant.TokenID)
	}
	return ids
}

// heldType returns the type the session holds a token as (0 if it does not).
func (s *Session) heldType(id token.ID) token.Actions {
	s.mu.Lock()
	defer s.mu.Unlock()
	var t token.Actions
	for _, h := range s.held {
		if h.Grant.TokenID == id {
			t |= h.Type
		}
	}
	return t
}

// heldsLocked returns the held tokens without their timers. Call with s.mu held.
func (s *Session) heldsLocked() []Held {
	hs := make([]Held, len(s.held))
	for i, h := range s.held {
		hs[i] = h.Held
	}
	return hs
}

// Establish is called once the CONNACK is out. It starts the expiry timers
// (or carries out a kick that arrived in between), lets the adapter remove
// inherited subscriptions the rights do not cover (a resumed session), and
// catches a revocation heard between validation and indexing.
func (s *Session) Establish() {
	s.mu.Lock()
	s.established = true
	pending := s.pendingKick
	if pending == nil {
		for _, hd := range s.held {
			s.armTimersLocked(hd)
		}
	}
	s.mu.Unlock()
	if pending != nil {
		pending()
		return
	}
	s.client.Restrict(s.Rights())
	for _, id := range s.TokenIDs() {
		if s.a.cache.isRevoked(id) {
			s.Kick(CauseRevoked, s.heldType(id), "token revoked")
			return
		}
	}
}

// End forgets the connection: it is gone (disconnected, taken over). Its
// timers stop and revocations no longer look for it. Rights stay as they
// were; the adapter stops consulting the session.
func (s *Session) End() {
	s.closing.Store(true)
	s.mu.Lock()
	s.stopTimersLocked()
	s.mu.Unlock()
	s.a.unindex(s, s.TokenIDs())
	s.a.untrack(s)
}

// armTimersLocked schedules the expiry notice and the expiry of one held
// token. Call with s.mu held.
func (s *Session) armTimersLocked(hd *held) {
	exp := hd.Grant.ExpireTime
	typ := hd.Type
	clk := s.a.cfg.Clock
	if n := s.a.cfg.ExpireNotice; n > 0 {
		hd.notice = clk.AfterFunc(max(exp.Add(-n).Sub(clk.Now()), 0), func() {
			if s.closing.Load() {
				return
			}
			s.client.Notify(expireNotice(exp, typ, s.authMethod.Load()))
		})
	}
	hd.expire = clk.AfterFunc(exp.Sub(clk.Now()), func() {
		s.Kick(CauseExpired, typ, "token expired")
	})
}

// stopTimersLocked stops every held token's timers. Call with s.mu held.
func (s *Session) stopTimersLocked() {
	for _, h := range s.held {
		stopTimer(h.notice)
		stopTimer(h.expire)
	}
}

func stopTimer(t Timer) Timer {
	if t != nil {
		t.Stop()
	}
	return nil
}

// Kick ends a connection whose token expired, was revoked or was replaced
// by an invalid renewal (typ is the type it was held as): its rights go at
// once, it gets $SYS/tokenInvalidNotice, then the adapter's Disconnect,
// or Close if that has not returned within one second. A kick before
// Establish waits for it (the CONNACK must go first). Only the first kick
// of a session does anything.
func (s *Session) Kick(cause Cause, typ token.Actions, why string) {
	if !s.closing.CompareAndSwap(false, true) {
		return
	}
	s.rights.Store(NoRights)
	s.a.obs.Disconnected(cause.String())
	if s.a.cfg.Events != nil { // TokenIDs takes the session's lock
		s.a.record(Event{Kind: "disconnect", ClientID: s.clientID, Remote: s.remote, Result: cause.String(), Reason: why,
			Code: cause.Reason(), TokenIDs: s.TokenIDs()})
	}
	run := func() {
		done := make(chan struct{})
		go func() {
			defer close(done)
			if cause != CauseKicked { // the tokens are fine; the connection is not
				s.client.Notify(invalidNotice(cause, typ))
			}
			s.client.Disconnect(cause)
		}()
		select {
		case <-done:
		case <-time.After(time.Second):
			s.client.Close(cause) // a stuck socket: close it under the writer
		}
	}
	s.a.log.Info("client disconnected", "client", s.clientID, "remote", s.remote, "reason", why,
		"code", cause.Reason().String())
	s.mu.Lock()
	if !s.established {
		s.pendingKick = run // the CONNACK is not out yet; Establish runs it
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	go run()
}
