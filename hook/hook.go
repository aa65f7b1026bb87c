package hook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tokenmq/tokenmq/acl"
	"github.com/tokenmq/tokenmq/token"
)

// System topics of ApsaraMQ token authentication (SPEC §3.4).
const (
	TopicExpireNotice  = "$SYS/tokenExpireNotice"
	TopicInvalidNotice = "$SYS/tokenInvalidNotice"
	TopicUploadToken   = "$SYS/uploadToken"
)

// Codes of $SYS/tokenInvalidNotice.
const (
	InvalidCodeInvalid = 1 // the token (or a renewal) is invalid or forged
	InvalidCodeExpired = 2
	InvalidCodeRevoked = 3
)

// RevocationFeed is where the hook hears of revocations: token.Service in
// process, api.Client over HTTP.
type RevocationFeed interface {
	Feed(ctx context.Context, instanceID string, after uint64, wait time.Duration) (token.FeedPage, error)
}

// Observer is told what the hook decides, for metrics. Its methods must be
// cheap: ACLDenied is called on the publish and delivery path.
type Observer interface {
	ConnectDecision(result, reason string)      // accepted/refused, and why
	Validation(outcome string, d time.Duration) // a validation call: valid, denied or error
	ACLDenied(action string)                    // publish or subscribe
	Disconnected(reason string)                 // expired, revoked, invalid_renewal
	Renewal(result string)                      // renewed, invalid, unavailable
	RevocationApplied(lag time.Duration)        // from the revocation to the broker acting on it
}

type nopObserver struct{}

func (nopObserver) ConnectDecision(string, string)      {}
func (nopObserver) Validation(string, time.Duration)    {}
func (nopObserver) ACLDenied(string)                    {}
func (nopObserver) Disconnected(string)                 {}
func (nopObserver) Renewal(string)                      {}
func (nopObserver) RevocationApplied(lag time.Duration) {}

// Config configures a Hook.
type Config struct {
	// Observer receives the hook's decisions, for metrics. Default: none.
	Observer Observer
	// InstanceID is the instance this broker serves. Required.
	InstanceID string
	// Validator checks tokens. Required.
	Validator Validator
	// Feed delivers revocations. Required.
	Feed RevocationFeed
	// Cache sizes the validation cache.
	Cache CacheConfig
	// AllowPlain accepts the plain form (any username, bare token). Default false;
	// the broker turns it on unless configured off.
	AllowPlain bool
	// DenyDisconnect disconnects a v3.1.1 client whose QoS 1/2 publish is
	// denied, instead of acknowledging and dropping it.
	DenyDisconnect bool
	// ExpireNotice is how long before expiry $SYS/tokenExpireNotice is sent;
	// 0 turns it off.
	ExpireNotice time.Duration
	// FeedWait is the long-poll wait of the revocation feed. Default 20s.
	FeedWait time.Duration
	// Backpressure: when a QoS 0 delivery is dropped because the
	// subscriber's queue is full, and that subscriber is reading at least
	// BackpressureMinRate packets/s, the publisher's connection pauses for
	// BackpressurePause, so that TCP slows the publisher down to what the
	// subscriber can take instead of the broker dropping the difference. A
	// stalled or slow reader (below the rate) slows no one: its messages are
	// dropped. BackpressurePause 0 turns this off.
	BackpressurePause   time.Duration
	BackpressureMinRate float64
	// Logger receives the hook's logs; never tokens.
	Logger *slog.Logger
}

// Hook is the Mochi hook. Register it alone: Mochi ORs the answers of
// hooks, so an allow-all hook beside it would open everything.
type Hook struct {
	mqtt.HookBase
	cfg    Config
	server *mqtt.Server
	cache  *Cache
	log    *slog.Logger

	sessions sync.Map // *mqtt.Client -> *session

	idxMu   sync.Mutex
	byToken map[token.ID]map[*session]struct{}

	stop      chan struct{}
	done      sync.WaitGroup
	closeOnce sync.Once

	feedHealthy atomic.Bool
	dropped     atomic.Int64
}

var _ mqtt.Hook = (*Hook)(nil)

// New returns a Hook for server. It does no I/O; Start begins following
// revocations.
func New(server *mqtt.Server, cfg Config) (*Hook, error) {
	if cfg.Validator == nil || cfg.Feed == nil || server == nil {
		return nil, errors.New("hook: server, Validator and Feed are required")
	}
	if err := token.ValidateInstanceID(cfg.InstanceID); err != nil {
		return nil, fmt.Errorf("hook: %w", err)
	}
	if cfg.FeedWait <= 0 {
		cfg.FeedWait = 20 * time.Second
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	cache, err := NewCache(cfg.Validator, cfg.InstanceID, cfg.Cache, nil)
	if err != nil {
		return nil, err
	}
	cache.observe = cfg.Observer.Validation
	return &Hook{cfg: cfg, server: server, cache: cache, log: log,
		byToken: make(map[token.ID]map[*session]struct{}), stop: make(chan struct{})}, nil
}

// ID implements mqtt.Hook.
func (h *Hook) ID() string { return "tokenmq-auth" }

// Provides implements mqtt.Hook: exactly the events the hook handles.
func (h *Hook) Provides(b byte) bool { return provided[b] }

// provided is what Provides answers: Mochi asks it before every hook call,
// several times per delivery, so it is a table.
var provided = func() (t [256]bool) {
	for _, e := range []byte{
		mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnSessionEstablished, mqtt.OnDisconnect,
		mqtt.OnACLCheck, mqtt.OnPublish, mqtt.OnPacketRead, mqtt.OnWill,
		mqtt.OnPacketSent, mqtt.OnPublishDropped, mqtt.OnAuthPacket,
	} {
		t[e] = true
	}
	return t
}()

// Cache returns the validation cache (for stats).
func (h *Hook) Cache() *Cache { return h.cache }

// Start begins following the revocation feed and housekeeping.
func (h *Hook) Start() {
	h.done.Add(2)
	go h.follow()
	go h.janitor()
}

// Close stops following revocations and the timers of every session.
func (h *Hook) Close() {
	h.closeOnce.Do(func() {
		close(h.stop)
		h.done.Wait()
		h.sessions.Range(func(_, v any) bool {
			s := v.(*session)
			s.mu.Lock()
			s.stopTimersLocked()
			s.mu.Unlock()
			return true
		})
	})
}

// FeedHealthy reports whether the last revocation-feed call succeeded.
func (h *Hook) FeedHealthy() bool { return h.feedHealthy.Load() }

// Sessions returns the number of authenticated connections.
func (h *Hook) Sessions() int {
	n := 0
	h.sessions.Range(func(_, _ any) bool { n++; return true })
	return n
}

// refusal is why a CONNECT is refused, with its v5 reason code and a
// short reason for logs and metrics.
type refusal struct {
	code    packets.Code
	reason  string
	err     error
	tokenID string // when the token was valid but not acceptable here
}

var (
	codeBadCredentials = packets.ErrBadUsernameOrPassword   // 0x86, v3 0x04
	codeNotAuthorized  = packets.ErrNotAuthorized           // 0x87, v3 0x05
	codeUnavailable    = packets.ErrServerUnavailable       // 0x88, v3 0x03
	codeBadAuthMethod  = packets.ErrBadAuthenticationMethod // 0x8C (MQTT 5 only)
)

// v3Code maps our v5 CONNACK reasons to MQTT 3.1.1 return codes. (Mochi's
// own table maps 0x86 to 0x05 and has no 0x87.)
func v3Code(c packets.Code) packets.Code {
	switch c.Code {
	case codeBadCredentials.Code:
		return packets.Code{Code: 0x04, Reason: c.Reason}
	case codeNotAuthorized.Code:
		return packets.Code{Code: 0x05, Reason: c.Reason}
	}
	return packets.Code{Code: 0x03, Reason: c.Reason}
}

// OnConnect authenticates the CONNECT. On refusal it sends the CONNACK
// itself, with the code SPEC §3.1 gives, and returns an error so that Mochi
// closes the connection.
func (h *Hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	s, ref := h.authenticate(cl, pk)
	if ref != nil {
		code := ref.code
		if cl.Properties.ProtocolVersion < 5 {
			code = v3Code(code)
		}
		_ = h.server.SendConnack(cl, code, false, nil)
		level := slog.LevelInfo
		if ref.code == codeUnavailable {
			level = slog.LevelWarn
		}
		h.cfg.Observer.ConnectDecision("refused", ref.reason)
		attrs := []any{"client", cl.ID, "remote", cl.Net.Remote, "reason", ref.reason, "code", fmt.Sprintf("0x%02x", ref.code.Code)}
		if ref.tokenID != "" {
			attrs = append(attrs, "token_id", ref.tokenID)
		}
		if ref.err != nil && ref.code == codeUnavailable {
			attrs = append(attrs, "err", ref.err)
		}
		h.log.Log(context.Background(), level, "connect refused", attrs...)
		return ref.code
	}
	h.index(s)
	h.sessions.Store(cl, s)
	if sl := slot(cl); sl != nil {
		sl.Store(s)
	}
	h.cfg.Observer.ConnectDecision("accepted", "ok")
	if h.log.Enabled(context.Background(), slog.LevelInfo) {
		h.log.Info("connect accepted", "client", cl.ID, "remote", cl.Net.Remote, "token_id", joinIDs(s.tokenIDs()))
	}
	return nil
}

func (h *Hook) authenticate(cl *mqtt.Client, pk packets.Packet) (*session, *refusal) {
	password, hasPassword := pk.Connect.Password, pk.Connect.PasswordFlag
	byAuthMethod := pk.Properties.AuthenticationMethod == AuthMethod
	if byAuthMethod && !hasPassword { // MQTT 5: the token as Authentication Data
		password, hasPassword = pk.Properties.AuthenticationData, len(pk.Properties.AuthenticationData) > 0
	}
	if pk.Properties.AuthenticationMethod != "" && !byAuthMethod {
		return nil, &refusal{code: codeBadAuthMethod, reason: "bad_authentication_method"}
	}
	creds, err := ParseCredentials(pk.Connect.Username, password, hasPassword, h.cfg.AllowPlain)
	if err != nil {
		return nil, &refusal{code: codeBadCredentials, reason: "malformed_credentials", err: err}
	}
	if creds.Form == FormApsara && creds.InstanceID != h.cfg.InstanceID {
		return nil, &refusal{code: codeNotAuthorized, reason: "wrong_instance"}
	}
	hs := make([]*held, 0, len(creds.Tokens))
	for _, c := range creds.Tokens {
		g, err := h.cache.Lookup(context.Background(), c.Token) // a miss's call is bounded by QueryTimeout
		switch {
		case errors.Is(err, token.ErrWrongInstance):
			return nil, &refusal{code: codeNotAuthorized, reason: "wrong_instance"}
		case token.IsDenied(err):
			return nil, &refusal{code: codeBadCredentials, reason: deniedReason(err), err: err}
		case err != nil:
			return nil, &refusal{code: codeUnavailable, reason: "token_service_unavailable", err: err}
		}
		typ := c.Type
		if creds.Form == FormPlain {
			typ = g.Actions
		}
		if ref := h.check(creds, g, typ); ref != nil {
			ref.tokenID = g.TokenID.String()
			return nil, ref
		}
		hs = append(hs, &held{g: g, typ: typ})
	}
	s := newSession(cl, creds, hs)
	s.authMethod.Store(byAuthMethod)
	if pk.Connect.WillFlag && !writable(s.rights.Load(), pk.Connect.WillTopic) {
		return nil, &refusal{codeNotAuthorized, "will_not_allowed", nil, joinIDs(s.tokenIDs())}
	}
	return s, nil
}

// check applies the ApsaraMQ rules to one valid token given as typ.
func (h *Hook) check(creds Credentials, g *grant, typ token.Actions) *refusal {
	if err := CheckGrant(creds, h.cfg.InstanceID, g.Grant, typ); err != nil {
		return &refusal{code: codeNotAuthorized, reason: grantReason(err), err: err}
	}
	return nil
}

// Errors of CheckGrant.
var (
	errGrantInstance  = errors.New("token of another instance")
	errGrantAccessKey = errors.New("token issued by another access key")
	errGrantType      = errors.New("token actions do not cover its type")
)

func grantReason(err error) string {
	switch err {
	case errGrantInstance:
		return "wrong_instance"
	case errGrantAccessKey:
		return "wrong_access_key"
	}
	return "type_not_covered"
}

// deniedReason names a validation denial for logs and metrics.
func deniedReason(err error) string {
	switch {
	case errors.Is(err, token.ErrExpired):
		return "expired_token"
	case errors.Is(err, token.ErrRevoked):
		return "revoked_token"
	case errors.Is(err, token.ErrForged), errors.Is(err, token.ErrMalformed):
		return "forged_token"
	}
	return "invalid_token"
}

func joinIDs(ids []token.ID) string {
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(id.String())
	}
	return b.String()
}

// CheckGrant applies SPEC §3.1's rules to one valid token of a CONNECT,
// given as typ: it must be of this instance, issued by the username's
// AccessKeyId (ApsaraMQ form), and its Actions must cover typ. A non-nil
// error is "not authorized" (0x87) and says which rule failed.
func CheckGrant(creds Credentials, instanceID string, g token.Grant, typ token.Actions) error {
	switch {
	case g.InstanceID != instanceID:
		return errGrantInstance
	case creds.Form == FormApsara && g.AccessKeyID != creds.AccessKeyID:
		return errGrantAccessKey
	case !g.Actions.Covers(typ):
		return errGrantType
	}
	return nil
}

// OnConnectAuthenticate implements mqtt.Hook: only connections OnConnect
// authenticated get in.
func (h *Hook) OnConnectAuthenticate(cl *mqtt.Client, _ packets.Packet) bool {
	return h.session(cl) != nil
}

// OnSessionEstablished starts the expiry timers once the CONNACK is out,
// and carries out a kick that arrived in between.
func (h *Hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	s := h.session(cl)
	if s == nil {
		return
	}
	s.mu.Lock()
	s.established = true
	pending := s.pendingKick
	if pending == nil {
		for _, hd := range s.held {
			h.armTimersLocked(s, hd)
		}
	}
	s.mu.Unlock()
	if pending != nil {
		pending()
		return
	}
	// A resumed session (clean start off) inherits its subscriptions; they
	// must fit this connection's token.
	h.pruneSubscriptions(cl, s.rights.Load())
	// A revocation heard between validation and indexing is caught here.
	for _, id := range s.tokenIDs() {
		if h.cache.isRevoked(id) {
			h.kick(s, InvalidCodeRevoked, s.heldType(id), packets.ErrAdministrativeAction, "token revoked")
			return
		}
	}
}

// armTimersLocked schedules the expiry notice and the expiry of one held
// token. Call with s.mu held.
func (h *Hook) armTimersLocked(s *session, hd *held) {
	exp := hd.g.ExpireTime
	typ := typeName(hd.typ)
	if n := h.cfg.ExpireNotice; n > 0 {
		hd.notice = time.AfterFunc(max(time.Until(exp.Add(-n)), 0), func() {
			if s.closing.Load() {
				return
			}
			payload := fmt.Appendf(nil, `{"expireTime":%d,"type":%q}`, exp.UnixMilli(), typ)
			var props []packets.UserProperty
			if s.authMethod.Load() { // MQTT 5 clients using the tokenmq method get it as user properties too
				props = []packets.UserProperty{{Key: "expireTime", Val: strconv.FormatInt(exp.UnixMilli(), 10)}, {Key: "type", Val: typ}}
			}
			h.publishTo(s.cl, TopicExpireNotice, payload, props...)
		})
	}
	hd.expire = time.AfterFunc(time.Until(exp), func() {
		h.kick(s, InvalidCodeExpired, hd.typ, packets.ErrMaxConnectTime, "token expired")
	})
}

// OnDisconnect forgets the connection.
func (h *Hook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) { h.forget(cl) }

func (h *Hook) forget(cl *mqtt.Client) {
	if sl := slot(cl); sl != nil {
		sl.Store(nil) // first: from here on the connection has no rights
	}
	v, ok := h.sessions.LoadAndDelete(cl)
	if !ok {
		return
	}
	s := v.(*session)
	s.closing.Store(true)
	s.mu.Lock()
	s.stopTimersLocked()
	s.mu.Unlock()
	h.unindex(s, s.tokenIDs())
}

// session returns cl's session, or nil if it has none (not authenticated,
// or gone). The map holds every session; the connection's slot the same one
// while it is in the map.
func (h *Hook) session(cl *mqtt.Client) *session {
	if sl := slot(cl); sl != nil {
		return sl.Load()
	}
	v, ok := h.sessions.Load(cl)
	if !ok {
		return nil
	}
	return v.(*session)
}

// OnACLCheck is Mochi's question for every subscription (the raw filter),
// inbound publish and delivery. It must not allocate or block.
func (h *Hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	s := h.session(cl)
	if s == nil {
		return false // never fail open
	}
	r := s.rights.Load()
	if write {
		// A publish by topic alias arrives here with topic ""; v3.1.1 denials
		// must be acknowledged, not disconnected (Mochi's choice). Both are
		// judged in OnPublish, which sees the resolved topic.
		if topic == "" || cl.Properties.ProtocolVersion < 5 {
			return true
		}
		ok := writable(r, topic)
		if !ok {
			h.cfg.Observer.ACLDenied("publish")
		}
		return ok
	}
	ok := readable(r, topic)
	if !ok {
		h.cfg.Observer.ACLDenied("subscribe") // or a delivery after the rights shrank
	}
	return ok
}

// writable reports whether a client may publish to topic name t (Mochi has
// validated it). Clients never publish to $SYS or $share topics.
func writable(r *rights, t string) bool {
	if t == "" || t[0] == '$' && reservedTopic(t) {
		return false
	}
	return r.write.Match(t)
}

// readable judges a subscription filter by containment (a shared one by the
// filter after "$share/<group>/") and a delivered topic by matching.
func readable(r *rights, f string) bool {
	if f == "" {
		return false
	}
	if f[0] == '$' {
		if _, inner, shared := acl.SharedFilter(f); shared {
			return inner != "" && acl.ValidateFilter(inner) == nil && r.read.Covers(inner)
		}
	}
	if strings.IndexByte(f, '+') >= 0 || strings.IndexByte(f, '#') >= 0 { // a filter with wildcards (IndexByte is vectorised; ContainsAny is not)
		return r.read.Covers(f)
	}
	return r.read.Match(f)
}

// reservedTopic reports a first level of $SYS or $share, in any case (as Mochi compares them).
func reservedTopic(t string) bool {
	first, _, _ := strings.Cut(t, "/")
	return strings.EqualFold(first, "$SYS") || strings.EqualFold(first, "$share")
}

// OnPublish judges a publish by its resolved topic (after topic aliases),
// answering denials the way SPEC §3.2 says.
func (h *Hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	s := h.session(cl)
	if s != nil && writable(s.rights.Load(), pk.TopicName) {
		return pk, nil
	}
	h.cfg.Observer.ACLDenied("publish")
	if cl.Properties.ProtocolVersion >= 5 {
		if pk.FixedHeader.Qos > 0 {
			ackType := packets.Puback
			if pk.FixedHeader.Qos == 2 {
				ackType = packets.Pubrec
			}
			_ = cl.WritePacket(ack(ackType, pk.PacketID, packets.ErrNotAuthorized))
		}
		return pk, packets.ErrRejectPacket
	}
	if h.cfg.DenyDisconnect && pk.FixedHeader.Qos > 0 {
		cl.Stop(packets.ErrNotAuthorized)
		return pk, packets.ErrRejectPacket
	}
	return pk, packets.CodeSuccessIgnore // acknowledged as usual, routed nowhere
}

func ack(typ byte, id uint16, reason packets.Code) packets.Packet {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: typ}, PacketID: id, ReasonCode: reason.Code}
	if reason.Code >= packets.ErrUnspecifiedError.Code {
		pk.Properties.ReasonString = reason.Reason
	}
	return pk
}

// OnWill lets a Will through only if its topic is publishable with the
// connection's rights at the time it is sent (none after a kick).
func (h *Hook) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	s := h.session(cl)
	if s != nil && writable(s.rights.Load(), will.TopicName) {
		return will, nil
	}
	h.log.Debug("will dropped: topic outside the connection's rights", "client", cl.ID)
	return mqtt.Will{}, nil // an empty topic reaches no subscriber and is not retained
}

// OnPacketRead sees client publishes to $SYS before Mochi drops them (it
// drops them without asking hooks, and without acknowledging them): it
// handles $SYS/uploadToken, and answers the others as denied publishes.
func (h *Hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type != packets.Publish || len(pk.TopicName) < 4 || !strings.EqualFold(pk.TopicName[:4], "$SYS") {
		return pk, nil
	}
	if pk.TopicName == TopicUploadToken {
		h.renew(cl, pk)
		return pk, nil
	}
	h.cfg.Observer.ACLDenied("publish")
	if cl.Properties.ProtocolVersion >= 5 {
		h.ackDropped(cl, pk, packets.ErrNotAuthorized)
	} else {
		h.ackDropped(cl, pk, packets.CodeSuccess) // acknowledged and dropped, as other v3.1.1 denials
	}
	return pk, nil
}

// OnPacketSent counts what the client has been sent: its drain rate.
func (h *Hook) OnPacketSent(cl *mqtt.Client, _ packets.Packet, _ []byte) {
	if s := h.session(cl); s != nil {
		s.sent.Add(1)
	}
}

// OnPublishDropped runs on the publisher's goroutine when a delivery to cl
// found its queue full. If cl is draining (just not fast enough), the
// publisher pauses: its socket is not read meanwhile, and TCP pushes back.
func (h *Hook) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	h.dropped.Add(1)
	if h.cfg.BackpressurePause <= 0 || pk.FixedHeader.Qos > 0 {
		return
	}
	s := h.session(cl)
	if s == nil || !s.draining(time.Now(), h.cfg.BackpressureMinRate) {
		return
	}
	time.Sleep(h.cfg.BackpressurePause)
}

// Dropped returns how many deliveries Mochi dropped for full queues.
func (h *Hook) Dropped() int64 { return h.dropped.Load() }

// maxUploadPayload bounds a $SYS/uploadToken payload.
const maxUploadPayload = 4096

// renew handles a $SYS/uploadToken publish: a valid token replaces the
// rights of its type for this connection; an invalid one ends it.
func (h *Hook) renew(cl *mqtt.Client, pk packets.Packet) {
	s := h.session(cl)
	if s == nil || s.closing.Load() {
		return
	}
	var body struct {
		Token string `json:"token"` // "Token" matches too
		Type  string `json:"type"`
	}
	typ, okType := token.Actions(0), false
	if len(pk.Payload) <= maxUploadPayload && json.Unmarshal(pk.Payload, &body) == nil {
		typ, okType = parseTypeName(body.Type)
	}
	if !okType {
		h.refuseRenewal(s, pk, typ, "malformed renewal")
		return
	}
	switch h.replaceToken(s, body.Token, typ) {
	case renewInvalid:
		h.refuseRenewal(s, pk, typ, "invalid renewal")
	case renewUnavailable:
		if pk.FixedHeader.Qos > 0 && cl.Properties.ProtocolVersion >= 5 {
			h.ackDropped(cl, pk, packets.ErrUnspecifiedError)
		}
	case renewed:
		h.ackDropped(cl, pk, packets.CodeSuccess)
	}
}

type renewResult int

const (
	renewed renewResult = iota
	renewInvalid
	renewUnavailable
	renewKicked // valid, but revoked while it was swapped in: the connection is ending
)

// replaceToken validates tok and makes it the connection's token of type
// typ (0: the token's own Actions), replacing that type's rights, removing
// the subscriptions they no longer cover and re-arming the expiry timers.
func (h *Hook) replaceToken(s *session, tok string, typ token.Actions) renewResult {
	cl := s.cl
	if checkTokenShape(tok) != nil {
		return renewInvalid
	}
	g, err := h.cache.Lookup(context.Background(), tok) // a miss's call is bounded by QueryTimeout
	if err != nil && !token.IsDenied(err) {
		h.cfg.Observer.Renewal("unavailable")
		h.log.Warn("renewal not checked: token service unavailable", "client", cl.ID, "err", err)
		return renewUnavailable
	}
	if err == nil && typ == 0 {
		typ = g.Actions
	}
	if err != nil || h.check(Credentials{Form: s.form, AccessKeyID: s.accessKeyID}, g, typ) != nil {
		return renewInvalid
	}

	s.mu.Lock()
	old := make([]token.ID, 0, len(s.held))
	var kept []*held
	for _, hd := range s.held {
		old = append(old, hd.g.TokenID)
		if rest := hd.typ &^ typ; rest != 0 {
			kept = append(kept, hd)
			if rest != hd.typ { // re-arm with the narrower type
				hd.notice, hd.expire = stopTimer(hd.notice), stopTimer(hd.expire)
				hd.typ = rest
				h.armTimersLocked(s, hd)
			}
		} else {
			stopTimer(hd.notice)
			stopTimer(hd.expire)
		}
	}
	nh := &held{g: g, typ: typ}
	s.held = append(kept, nh)
	h.armTimersLocked(s, nh)
	r := computeRights(s.held)
	s.rights.Store(r)
	s.mu.Unlock()
	h.unindex(s, old)
	h.index(s)
	if h.cache.isRevoked(g.TokenID) { // revoked while we were swapping it in
		h.kick(s, InvalidCodeRevoked, typ, packets.ErrAdministrativeAction, "token revoked")
		return renewKicked
	}
	h.pruneSubscriptions(cl, r)
	h.cfg.Observer.Renewal("renewed")
	h.log.Info("token renewed", "client", cl.ID, "token_id", g.TokenID.String(), "type", typeName(typ))
	return renewed
}

// AuthMethod is the MQTT 5 Authentication Method of tokenmq tokens: in
// CONNECT the Authentication Data may carry the token instead of the
// password; an AUTH packet (reason 0x19) with it renews in session.
const AuthMethod = "tokenmq"

// OnAuthPacket handles MQTT 5 re-authentication: AUTH with reason 0x19,
// method "tokenmq", the new token as Authentication Data and, optionally, a
// user property "type" (R, W or RW; default: the token's own Actions). It
// answers AUTH 0x00, or ends the connection (0x8C for another method, as an
// invalid renewal otherwise).
func (h *Hook) OnAuthPacket(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	s := h.session(cl)
	if s == nil || s.closing.Load() {
		return pk, packets.ErrNotAuthorized
	}
	if pk.Properties.AuthenticationMethod != AuthMethod {
		return pk, packets.ErrBadAuthenticationMethod // Mochi disconnects with it
	}
	var typ token.Actions
	for _, up := range pk.Properties.User {
		if up.Key == "type" {
			t, ok := parseTypeName(up.Val)
			if !ok {
				h.cfg.Observer.Renewal("invalid")
				h.kick(s, InvalidCodeInvalid, 0, packets.ErrNotAuthorized, "malformed re-authentication")
				return pk, nil
			}
			typ = t
		}
	}
	switch h.replaceToken(s, string(pk.Properties.AuthenticationData), typ) {
	case renewInvalid:
		h.cfg.Observer.Renewal("invalid")
		h.kick(s, InvalidCodeInvalid, typ, packets.ErrNotAuthorized, "invalid re-authentication")
	case renewUnavailable:
		return pk, packets.ErrServerUnavailable
	case renewed:
		s.authMethod.Store(true)
		_ = cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Auth},
			ReasonCode: packets.CodeSuccess.Code, Properties: packets.Properties{AuthenticationMethod: AuthMethod}})
	}
	return pk, nil
}

// refuseRenewal answers an invalid $SYS/uploadToken: a v5 client's QoS 1/2
// publish gets 0x87, then the notice (code 1) and the disconnect.
func (h *Hook) refuseRenewal(s *session, pk packets.Packet, typ token.Actions, why string) {
	h.cfg.Observer.Renewal("invalid")
	if s.cl.Properties.ProtocolVersion >= 5 {
		h.ackDropped(s.cl, pk, packets.ErrNotAuthorized)
	}
	h.kick(s, InvalidCodeInvalid, typ, packets.ErrNotAuthorized, why)
}

func stopTimer(t *time.Timer) *time.Timer {
	if t != nil {
		t.Stop()
	}
	return nil
}

// ackDropped acknowledges a publish to $SYS, which Mochi then drops without
// answering. A QoS 2 one acknowledged with success enters the in-flight
// table so that Mochi completes PUBREL/PUBCOMP as usual.
func (h *Hook) ackDropped(cl *mqtt.Client, pk packets.Packet, reason packets.Code) {
	switch pk.FixedHeader.Qos {
	case 1:
		_ = cl.WritePacket(ack(packets.Puback, pk.PacketID, reason))
	case 2:
		rec := ack(packets.Pubrec, pk.PacketID, reason)
		if reason.Code < packets.ErrUnspecifiedError.Code && cl.State.Inflight.Set(rec) {
			atomic.AddInt64(&h.server.Info.Inflight, 1)
			cl.State.Inflight.DecreaseReceiveQuota()
		}
		_ = cl.WritePacket(rec)
	}
}

// pruneSubscriptions removes the subscriptions the rights no longer cover.
func (h *Hook) pruneSubscriptions(cl *mqtt.Client, r *rights) {
	for filter := range cl.State.Subscriptions.GetAll() {
		if readable(r, filter) {
			continue
		}
		if h.server.Topics.Unsubscribe(filter, cl.ID) {
			atomic.AddInt64(&h.server.Info.Subscriptions, -1)
		}
		cl.State.Subscriptions.Delete(filter)
		h.log.Info("subscription removed: not covered by the connection's token", "client", cl.ID, "topic", filter)
	}
}

// kick ends a connection whose token expired, was revoked or was replaced
// by an invalid renewal: its rights go at once, it gets
// $SYS/tokenInvalidNotice, then a DISCONNECT (v5) or a closed socket
// (v3.1.1), within one second whatever the socket does.
func (h *Hook) kick(s *session, code int, typ token.Actions, reason packets.Code, why string) {
	if !s.closing.CompareAndSwap(false, true) {
		return
	}
	s.rights.Store(noRights)
	h.cfg.Observer.Disconnected(disconnectReason(code))
	run := func() {
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.publishTo(s.cl, TopicInvalidNotice, fmt.Appendf(nil, `{"code":%d,"type":%q}`, code, typeName(typ)))
			if s.cl.Properties.ProtocolVersion >= 5 {
				_ = h.server.DisconnectClient(s.cl, reason)
			} else {
				s.cl.Stop(reason)
			}
		}()
		select {
		case <-done:
		case <-time.After(time.Second):
			s.cl.Stop(reason) // a stuck socket: close it under the writer
		}
	}
	h.log.Info("client disconnected", "client", s.cl.ID, "remote", s.cl.Net.Remote, "reason", why,
		"code", fmt.Sprintf("0x%02x", reason.Code))
	s.mu.Lock()
	if !s.established {
		s.pendingKick = run // the CONNACK is not out yet; OnSessionEstablished runs it
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	go run()
}

// disconnectReason names a kick's $SYS/tokenInvalidNotice code for metrics.
func disconnectReason(code int) string {
	switch code {
	case InvalidCodeExpired:
		return "expired"
	case InvalidCodeRevoked:
		return "revoked"
	}
	return "invalid_renewal"
}

// publishTo sends a QoS 0 PUBLISH to one client only, bypassing routing.
func (h *Hook) publishTo(cl *mqtt.Client, topic string, payload []byte, props ...packets.UserProperty) {
	_ = cl.WritePacket(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish},
		TopicName:   topic,
		Payload:     payload,
		Properties:  packets.Properties{User: props},
	})
}

// index records which sessions rely on which tokens, for revocation kicks.
func (h *Hook) index(s *session) {
	ids := s.tokenIDs()
	h.idxMu.Lock()
	for _, id := range ids {
		m := h.byToken[id]
		if m == nil {
			m = make(map[*session]struct{})
			h.byToken[id] = m
		}
		m[s] = struct{}{}
	}
	h.idxMu.Unlock()
}

func (h *Hook) unindex(s *session, ids []token.ID) {
	h.idxMu.Lock()
	for _, id := range ids {
		if m := h.byToken[id]; m != nil {
			delete(m, s)
			if len(m) == 0 {
				delete(h.byToken, id)
			}
		}
	}
	h.idxMu.Unlock()
}

// Revoke applies a revocation: the token is refused from now on and every
// connection relying on it is notified and disconnected.
func (h *Hook) Revoke(rv token.Revocation) {
	h.cache.MarkRevoked(rv.ID, rv.ExpireTime)
	h.cfg.Observer.RevocationApplied(time.Since(rv.RevokeTime))
	h.idxMu.Lock()
	var victims []*session
	for s := range h.byToken[rv.ID] {
		victims = append(victims, s)
	}
	h.idxMu.Unlock()
	for _, s := range victims {
		if typ := s.heldType(rv.ID); typ != 0 {
			h.kick(s, InvalidCodeRevoked, typ, packets.ErrAdministrativeAction, "token revoked")
		}
	}
}

// follow keeps up with the revocation feed, from the start of the log, and
// after an outage from where it stopped.
func (h *Hook) follow() {
	defer h.done.Done()
	stopped, cancelAll := context.WithCancel(context.Background())
	defer cancelAll()
	go func() { <-h.stop; cancelAll() }()
	var next uint64
	backoff := 50 * time.Millisecond
	for stopped.Err() == nil {
		ctx, cancel := context.WithTimeout(stopped, h.cfg.FeedWait+10*time.Second)
		page, err := h.cfg.Feed.Feed(ctx, h.cfg.InstanceID, next, h.cfg.FeedWait)
		cancel()
		if stopped.Err() != nil {
			return
		}
		if err != nil {
			if h.feedHealthy.Swap(false) {
				h.log.Warn("revocation feed unavailable; retrying", "err", err)
			}
			select {
			case <-stopped.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 500*time.Millisecond) // catch up within a second of the service's return
			continue
		}
		if !h.feedHealthy.Swap(true) && next > 0 {
			h.log.Info("revocation feed back; caught up", "from", next, "to", page.Next)
		}
		backoff = 50 * time.Millisecond
		if page.Reset {
			h.log.Warn("revocation log restarted; dropping cached answers")
			h.cache.Purge()
		}
		for _, rv := range page.Revocations {
			h.Revoke(rv)
		}
		next = page.Next
	}
}

// janitor forgets expired revocations and cached answers, and sessions
// whose connection died without Mochi reporting it (a failure between
// CONNECT and CONNACK).
func (h *Hook) janitor() {
	defer h.done.Done()
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
			h.cache.Prune()
			h.cache.PurgeExpired()
			h.sessions.Range(func(k, _ any) bool {
				if cl := k.(*mqtt.Client); cl.Closed() {
					h.forget(cl)
				}
				return true
			})
		}
	}
}
