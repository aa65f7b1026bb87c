// Package mosqauth is the Mosquitto adapter of tokenmq's auth core (SPEC
// §6.3): it turns Mosquitto 2's plugin events (basic and extended auth,
// ACL checks, $CONTROL messages, disconnects, ticks) into tokenauth calls,
// and the core's decisions (notices, kicks) into the broker operations a
// Broker carries out. It has no cgo: cmd/tokenmq-mosquitto is the C side,
// and the tests drive it directly.
//
// Threads. Mosquitto is single-threaded and calls every event on its
// thread; so are all of Plugin's methods but Close. The core's timers and
// the revocation feed run on goroutines: what they decide is queued and
// carried out in Tick, on Mosquitto's thread, so that no Go code touches
// Mosquitto's structures from anywhere else.
package mosqauth

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/tokenmq/tokenmq/api"
	"github.com/tokenmq/tokenmq/token"
	"github.com/tokenmq/tokenmq/tokenauth"
)

// Ref is Mosquitto's client pointer (struct mosquitto *), opaque to Go. It
// names one connection: a reconnect, a takeover and a resume make a new one.
type Ref uintptr

// Broker is what the plugin asks of Mosquitto; Plugin calls it only on
// Mosquitto's thread (in Tick and in the events).
type Broker interface {
	// Publish sends a QoS 0 message to one client (mosquitto_broker_publish
	// with its client ID: no ACL check, no subscription needed), with MQTT 5
	// user properties.
	Publish(clientID, topic string, payload []byte, props []tokenauth.Property)
	// Kick disconnects the client with this ID, without its Will.
	Kick(clientID string)
	// ClientID is the client ID of a client pointer (mosquitto_client_id).
	ClientID(r Ref) string
	// Log writes a line to Mosquitto's log.
	Log(level slog.Level, line string)
	// Wake asks for a Tick at Mosquitto's next loop: there is work for it
	// (the broker side may skip ticks otherwise, down to one a tenth of a
	// second). Any goroutine calls it.
	Wake()
}

// Access is the access of an ACL check (MOSQ_ACL_*).
type Access int

// Accesses Mosquitto checks.
const (
	Read        Access = 0x01 // a delivery to the client (live, queued, retained)
	Write       Access = 0x02 // the client's publish, or its Will when it is sent
	Subscribe   Access = 0x04 // a SUBSCRIBE filter, raw ($share/<group>/ included)
	Unsubscribe Access = 0x08
)

// Result is a plugin event's answer; cmd/tokenmq-mosquitto maps it to
// Mosquitto's return codes.
type Result int

// Results of events.
const (
	Allow Result = iota // MOSQ_ERR_SUCCESS
	Deny                // MOSQ_ERR_AUTH (CONNACK 0x87 / 5) or MOSQ_ERR_ACL_DENIED
	Drop                // MOSQ_ERR_UNKNOWN: Mosquitto closes the socket without a CONNACK
	Defer               // MOSQ_ERR_PLUGIN_DEFER: not ours (another auth method)
)

// ControlTopic is where an MQTT 3.1.1 (or 5) client renews in session:
// Mosquitto refuses client publishes to $SYS/uploadToken before any plugin
// sees them, but hands $CONTROL/<feature> publishes to the plugin that
// registered the feature, routing them nowhere else. The payload is
// $SYS/uploadToken's ({"token":…,"type":…}).
const ControlTopic = "$CONTROL/tokenmq/uploadToken"

// ConnInfo is what Mosquitto tells of a CONNECT.
type ConnInfo struct {
	ClientID           string
	Username, Password []byte
	HasPassword        bool
	Remote             string
	ProtocolVersion    int // 3, 4 or 5
}

// Plugin is the adapter: one per Mosquitto process.
type Plugin struct {
	opts   Options
	broker Broker
	auth   *tokenauth.Authority
	log    *slog.Logger
	lines  *lineQueue

	// Connections by client pointer, and the connection that holds each
	// client ID: Mosquitto's thread only.
	live map[Ref]*conn
	byID map[string]*conn
	// Sessions whose connection is gone, by client ID (with the pointer of
	// their Mosquitto context): an offline persistent session's deliveries
	// and a Will are checked against the rights it last held.
	gone map[string]*conn

	// slowUntil: the token service did not answer in time; until then a
	// CONNECT waits for it failFast at most (Mosquitto's thread only).
	slowUntil time.Time

	mu      sync.Mutex
	pending []action // queued by goroutines, carried out in Tick
	ticks   uint64
	swept   time.Time
}

// conn is one connection: its core session and the client ID Mosquitto
// knows it by. It is the core's tokenauth.Client.
type conn struct {
	p        *Plugin
	ref      Ref
	clientID string
	session  *tokenauth.Session
}

type actionKind int

const (
	actEstablish actionKind = iota
	actNotify
	actKick
)

type action struct {
	kind   actionKind
	c      *conn
	notice tokenauth.Notice
	after  uint64 // tick number before which it waits
}

// A token service that did not answer within the query timeout gets
// failFast per CONNECT for slowFor.
const (
	failFast = 2 * time.Millisecond
	slowFor  = 5 * time.Second
)

// New starts the plugin: the core over the token service's HTTP API (its
// cache, single-flight, stale grace and revocation feed).
func New(opts Options, b Broker) (*Plugin, error) {
	c := &api.Client{Endpoint: opts.TokenService, AccessKeyID: opts.AccessKeyID, AccessKeySecret: opts.AccessKeySecret,
		HTTPClient: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: time.Minute}}}
	return newPlugin(opts, b, c, c)
}

// NewWith is New over any validator and revocation feed (an in-process
// token service, in tests and benchmarks).
func NewWith(opts Options, b Broker, v tokenauth.Validator, feed tokenauth.RevocationFeed) (*Plugin, error) {
	return newPlugin(opts, b, v, feed)
}

func newPlugin(opts Options, b Broker, v tokenauth.Validator, feed tokenauth.RevocationFeed) (*Plugin, error) {
	p := &Plugin{opts: opts, broker: b, live: map[Ref]*conn{}, byID: map[string]*conn{}, gone: map[string]*conn{},
		lines: &lineQueue{wake: b.Wake}}
	p.log = slog.New(slog.NewTextHandler(p.lines, &slog.HandlerOptions{Level: opts.LogLevel,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{} // Mosquitto's log line has its own time
			}
			return a
		}})).With("broker", "mosquitto")
	if opts.Cache.QueryTimeout <= 0 {
		opts.Cache.QueryTimeout = time.Second
		p.opts.Cache.QueryTimeout = time.Second
	}
	registry, _ := feed.(tokenauth.ClientRegistry) // the token service: ListClients lists this broker's clients too
	auth, err := tokenauth.New(tokenauth.Config{InstanceID: opts.InstanceID, Validator: v, Feed: feed, Registry: registry, Cache: opts.Cache,
		AllowPlain: opts.AllowPlain, ExpireNotice: opts.ExpireNotice, Logger: p.log, SentCode: sentCode})
	if err != nil {
		return nil, err
	}
	p.auth = auth
	auth.Start()
	p.log.Info("tokenmq plugin started", "token_service", opts.TokenService, "instance_id", opts.InstanceID)
	return p, nil
}

// Close stops the core (the revocation feed, the timers' effects).
func (p *Plugin) Close() {
	p.auth.Close()
	p.flushLog()
}

// BasicAuth decides a CONNECT without an Authentication Method. The wait
// for the token service is bounded by the query timeout (per token).
func (p *Plugin) BasicAuth(r Ref, in ConnInfo) Result {
	return p.connect(r, in, tokenauth.ConnectRequest{})
}

// ExtAuth handles MQTT 5 enhanced authentication with method "tokenmq":
// at CONNECT (the token as Authentication Data), and re-authentication
// (an AUTH packet, reason 0x19) of a connection already accepted, which
// renews in session. Other methods are not ours.
func (p *Plugin) ExtAuth(r Ref, in ConnInfo, method string, data []byte) Result {
	if method != tokenauth.AuthMethod {
		return Defer
	}
	if c := p.live[r]; c != nil && c.clientID == in.ClientID {
		return p.reauth(c, data)
	}
	return p.connect(r, in, tokenauth.ConnectRequest{AuthMethod: method, AuthData: data})
}

func (p *Plugin) connect(r Ref, in ConnInfo, req tokenauth.ConnectRequest) Result {
	req.ClientID, req.Remote, req.ProtocolVersion = in.ClientID, in.Remote, byte(in.ProtocolVersion)
	req.Username, req.Password, req.HasPassword = in.Username, in.Password, in.HasPassword
	if len(req.Password) == 0 {
		req.HasPassword = false // an empty password is no password (SPEC §3.1: bad credentials)
	}
	c := &conn{p: p, ref: r, clientID: in.ClientID}
	// On Mosquitto's thread: a cached answer costs microseconds, and a
	// lookup the cache must make waits at most the query timeout. After a
	// token service that did not answer in time, CONNECTs that need it are
	// given failFast only, for slowFor: one stuck token service holds
	// Mosquitto's loop for one query timeout, not one per CONNECT.
	start := time.Now()
	budget := p.opts.Cache.QueryTimeout
	if start.Before(p.slowUntil) {
		budget = failFast
	}
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	req.Ctx = ctx
	s, ref := p.auth.Connect(req, c)
	cancel()
	p.flushLog()
	if ref != nil {
		if ref.Code == tokenauth.ReasonUnavailable {
			if budget > failFast && time.Since(start) >= budget/2 {
				p.slowUntil = time.Now().Add(slowFor)
				p.log.Warn("token service slow: CONNECTs that need it are refused at once for a while", "for", slowFor, "query_timeout", budget)
				p.flushLog()
			}
			return Drop // no CONNACK: the client retries, as it would after 0x88 / 3
		}
		return Deny
	}
	c.session = s
	if old := p.byID[in.ClientID]; old != nil {
		old.session.End() // a takeover: Mosquitto disconnects the old one next
	}
	if old := p.gone[in.ClientID]; old != nil {
		delete(p.gone, in.ClientID) // resumed (Mosquitto re-checks its messages against the new rights) or discarded
	}
	p.live[r] = c
	p.byID[in.ClientID] = c
	p.queue(action{kind: actEstablish, c: c}) // the CONNACK is out by the next tick
	return Allow
}

// reauth renews a connection's token by an AUTH packet. Mosquitto's v5
// event carries no properties, so the token is held as its own type.
func (p *Plugin) reauth(c *conn, data []byte) Result {
	if c.session.Closing() {
		return Deny
	}
	switch c.session.Renew(string(data), 0) {
	case tokenauth.Renewed:
		c.session.UseAuthMethod()
		p.flushLog()
		return Allow
	case tokenauth.RenewUnavailable:
		p.flushLog()
		return Deny // Mosquitto ends the connection; the client reconnects
	default:
		c.session.RefuseRenewal(0, "invalid re-authentication")
		p.flushLog()
		return Deny
	}
}

// Control handles a publish to ControlTopic: an in-session renewal
// (SPEC §3.4 by the path Mosquitto leaves open). A valid token replaces
// the rights of its type; an invalid one ends the connection, after its
// $SYS/tokenInvalidNotice. Mosquitto acknowledges a $CONTROL publish with
// success whatever the plugin answers, and closes the connection at once
// if the answer is not Allow: so a refused renewal is answered Allow, and
// the kick follows in a tick or two.
func (p *Plugin) Control(r Ref, topic string, payload []byte) Result {
	c := p.live[r]
	if c == nil || topic != ControlTopic {
		return Deny
	}
	if c.session.Closing() {
		return Allow // already on its way out
	}
	defer p.flushLog()
	tok, typ, err := tokenauth.ParseUpload(payload)
	if err != nil {
		c.session.RefuseRenewal(typ, "malformed renewal")
		return Allow
	}
	switch c.session.Renew(tok, typ) {
	case tokenauth.RenewUnavailable:
		return Drop // nothing changed; the client learns by the closed connection, and reconnects
	case tokenauth.RenewInvalid:
		c.session.RefuseRenewal(typ, "invalid renewal")
	}
	return Allow
}

// ACLCheck judges a publish, a subscription or a delivery. topic must not
// be kept: it may point into Mosquitto's memory.
func (p *Plugin) ACLCheck(r Ref, access Access, topic string) Result {
	if c := p.live[r]; c != nil {
		rights := c.session.Rights()
		switch access {
		case Read, Subscribe:
			if rights.Readable(topic) {
				return Allow
			}
		case Write:
			if rights.Writable(topic) || topic == ControlTopic && !c.session.Closing() {
				return Allow
			}
		case Unsubscribe:
			return Allow
		}
		return Deny
	}
	// Not connected: an offline persistent session's delivery (queued for
	// it), or a Will being sent. Judged by the tokens it last held, as they
	// are now: not expired, not revoked.
	if access != Read && access != Write {
		return Deny
	}
	id := p.broker.ClientID(r)
	c := p.gone[id]
	if c == nil || c.ref != r {
		return Deny
	}
	typ := token.ActionRead
	if access == Write {
		typ = token.ActionWrite
	}
	if c.session.Permits(typ, topic, time.Now()) {
		return Allow
	}
	return Deny
}

// Disconnect is a connection's end (MOSQ_EVT_DISCONNECT): its timers stop
// and revocations no longer look for it; its rights stay for what its
// Mosquitto context may still do (an offline session's queue, a Will).
func (p *Plugin) Disconnect(r Ref) {
	c := p.live[r]
	if c == nil {
		return
	}
	delete(p.live, r)
	c.session.End()
	if p.byID[c.clientID] == c {
		delete(p.byID, c.clientID)
		p.gone[c.clientID] = c
	}
}

// Tick runs on Mosquitto's thread about ten times a second: it carries
// out what the core decided elsewhere (notices, kicks, the start of a
// session's timers), writes the log, and forgets sessions none of whose
// tokens is still valid.
func (p *Plugin) Tick() {
	p.mu.Lock()
	p.ticks++
	now := p.ticks
	var run, later []action
	for _, a := range p.pending {
		if a.after > now {
			later = append(later, a)
		} else {
			run = append(run, a)
		}
	}
	p.pending = later
	p.mu.Unlock()
	if len(later) > 0 {
		p.broker.Wake() // a kick waiting for its notice to be written
	}
	for _, a := range run {
		c := a.c
		switch a.kind {
		case actEstablish:
			c.session.Establish()
		case actNotify:
			if p.byID[c.clientID] == c {
				p.broker.Publish(c.clientID, a.notice.Topic, a.notice.Payload, a.notice.Properties)
			}
		case actKick:
			if p.byID[c.clientID] == c {
				p.broker.Kick(c.clientID)
			}
		}
	}
	if t := time.Now(); t.Sub(p.swept) > 10*time.Second {
		p.swept = t
		for id, c := range p.gone {
			if !c.session.Expiry().After(t) {
				delete(p.gone, id)
			}
		}
	}
	p.flushLog()
}

// sentCode is what Mosquitto answers a refusal with: 0x87 / 5, or for a
// token service that cannot answer, no CONNACK (the socket is closed).
func sentCode(r *tokenauth.Refusal, v byte) string {
	switch {
	case r.Code == tokenauth.ReasonUnavailable:
		return "none (socket closed)"
	case v >= 5:
		return tokenauth.ReasonNotAuthorized.String()
	}
	return tokenauth.ReasonCode(tokenauth.ReasonNotAuthorized.V3()).String()
}

func (p *Plugin) queue(a action) {
	p.mu.Lock()
	if a.kind == actKick {
		// A notice queued just before (the $SYS/tokenInvalidNotice of the
		// kick) goes out at the start of Mosquitto's next loop: kick after it.
		a.after = p.ticks + 2
	}
	p.pending = append(p.pending, a)
	p.mu.Unlock()
	p.broker.Wake()
}

func (p *Plugin) flushLog() {
	for _, l := range p.lines.take() {
		p.broker.Log(l.level, l.text)
	}
}

// Notify implements tokenauth.Client.
func (c *conn) Notify(n tokenauth.Notice) { c.p.queue(action{kind: actNotify, c: c, notice: n}) }

// Disconnect implements tokenauth.Client: Mosquitto kicks it (an MQTT 5
// client gets DISCONNECT 0x98, whatever the cause; 3.1.1 a closed socket).
func (c *conn) Disconnect(tokenauth.Cause) { c.p.queue(action{kind: actKick, c: c}) }

// Close implements tokenauth.Client: the same kick.
func (c *conn) Close(tokenauth.Cause) { c.p.queue(action{kind: actKick, c: c}) }

// Restrict implements tokenauth.Client. A plugin cannot remove a
// subscription in Mosquitto 2.0; every delivery is checked against the
// rights instead, so a subscription the rights no longer cover receives
// nothing.
func (c *conn) Restrict(*tokenauth.Rights) {}
