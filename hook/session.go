package hook

import (
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/tokenmq/tokenmq/acl"
	"github.com/tokenmq/tokenmq/token"
)

// rights are what a connection may do now: compiled ACLs for subscribe and
// receive (read) and publish (write). Replaced whole, never mutated.
type rights struct {
	read, write *acl.ACL
}

var noRights = &rights{}

// held is a token a connection relies on, as the type it was given for.
type held struct {
	g      *grant
	typ    token.Actions
	notice *time.Timer
	expire *time.Timer
}

// session is the per-connection state, keyed by *mqtt.Client (a takeover
// makes a new client, so a new session).
type session struct {
	cl          *mqtt.Client
	form        Form
	accessKeyID string // FormApsara: tokens must be issued by this key

	rights     atomic.Pointer[rights] // read on every publish and delivery
	authMethod atomic.Bool            // the client uses MQTT 5's Authentication Method "tokenmq"

	// Delivery progress, for QoS 0 backpressure: packets written to the
	// client, and a snapshot of that count to measure its drain rate.
	sent        atomic.Int64
	drainMu     sync.Mutex
	drainAt     time.Time
	drainCount  int64
	drainPerSec float64

	mu          sync.Mutex
	held        []*held
	established bool
	pendingKick func() // a kick requested before the CONNACK was sent
	closing     atomic.Bool
}

func newSession(cl *mqtt.Client, creds Credentials, hs []*held) *session {
	s := &session{cl: cl, form: creds.Form, accessKeyID: creds.AccessKeyID, held: hs}
	s.rights.Store(computeRights(hs))
	return s
}

// computeRights unions the resources of the held tokens by type. A single
// token's compiled ACL is shared as it is; several are compiled together.
func computeRights(hs []*held) *rights {
	return &rights{read: unionACL(hs, token.ActionRead), write: unionACL(hs, token.ActionWrite)}
}

func unionACL(hs []*held, typ token.Actions) *acl.ACL {
	var picked []*grant
	for _, h := range hs {
		if h.typ&typ != 0 {
			picked = append(picked, h.g)
		}
	}
	switch len(picked) {
	case 0:
		return nil
	case 1:
		return picked[0].acl
	}
	var filters []string
	for _, g := range picked {
		filters = append(filters, g.Resources...)
	}
	a, err := acl.Compile(filters)
	if err != nil { // each was compiled before, so this cannot happen; fail closed if it does
		return nil
	}
	return a
}

// tokenIDs returns the IDs of the held tokens.
func (s *session) tokenIDs() []token.ID {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]token.ID, 0, len(s.held))
	for _, h := range s.held {
		ids = append(ids, h.g.TokenID)
	}
	return ids
}

// heldType returns the type the session holds a token as (0 if it does not).
func (s *session) heldType(id token.ID) token.Actions {
	s.mu.Lock()
	defer s.mu.Unlock()
	var t token.Actions
	for _, h := range s.held {
		if h.g.TokenID == id {
			t |= h.typ
		}
	}
	return t
}

// stopTimers stops every held token's timers. Call with s.mu held.
func (s *session) stopTimersLocked() {
	for _, h := range s.held {
		if h.notice != nil {
			h.notice.Stop()
		}
		if h.expire != nil {
			h.expire.Stop()
		}
	}
}

// draining reports whether the client is reading at least minRate packets
// per second, measured over windows of at least 50 ms.
func (s *session) draining(now time.Time, minRate float64) bool {
	s.drainMu.Lock()
	defer s.drainMu.Unlock()
	if el := now.Sub(s.drainAt); el >= 50*time.Millisecond {
		n := s.sent.Load()
		if !s.drainAt.IsZero() {
			s.drainPerSec = float64(n-s.drainCount) / el.Seconds()
		}
		s.drainAt, s.drainCount = now, n
	}
	return s.drainPerSec >= minRate
}
