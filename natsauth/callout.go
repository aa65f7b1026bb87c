package natsauth

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/tokenmq/tokenmq/token"
	"github.com/tokenmq/tokenmq/tokenauth"
)

// AuthSubject is where nats-server asks the callout (auth_callout.go).
const AuthSubject = "$SYS.REQ.USER.AUTH"

// Tokens is what the callout reads of the token service besides
// validation: a token's record by ID (to take on connections admitted
// before a restart) and the records' list (the '$' levels they name).
// token.Service implements it.
type Tokens interface {
	Get(ctx context.Context, instanceID string, id token.ID) (*token.Record, error)
	List(ctx context.Context, instanceID string, pageSize int, cursor string) ([]*token.Record, string, error)
}

// Config configures a Callout.
type Config struct {
	// URL is the NATS server (or comma-separated servers) to connect to.
	URL string
	// User and Password log the callout in: a user of the callout account
	// listed in auth_callout.auth_users.
	User, Password string
	// Issuer signs the answers: the account key whose public key is the
	// servers' auth_callout.issuer.
	Issuer nkeys.KeyPair
	// Account is the account authorized clients are placed in.
	Account string
	// SystemUser and SystemPassword log in to the system account, to
	// disconnect clients and follow their connections.
	SystemUser, SystemPassword string
	// Authority admits the connections and follows revocations; its
	// instance is the one the NATS cluster's clients must hold tokens of.
	Authority *tokenauth.Authority
	// Tokens reads records.
	Tokens Tokens
	// Timeout bounds one answer; nats-server waits its authorization
	// timeout (2 s by default) and refuses the client after it. Default 1.5s.
	Timeout time.Duration
	// Workers answer requests concurrently. Default 64.
	Workers int
	// Logger receives the logs. Default slog.Default().
	Logger *slog.Logger
}

// Stats count what the callout did.
type Stats struct {
	Accepted, Refused, Kicks, KickFailures, Adopted int64
}

// Callout is tokenmq as a NATS cluster's MQTT authority (SPEC §6.2): it
// answers the servers' authorization requests for MQTT clients with the
// token's rights as NATS permissions, and disconnects the clients whose
// token expires or is revoked, on whichever server they are.
type Callout struct {
	cfg       Config
	log       *slog.Logger
	issuer    string
	signer    *fastKey     // cfg.Issuer, its key derived once
	authConns []*nats.Conn // one per server URL given: each server has a local answerer
	sysConn   *nats.Conn
	levels    *dollarScanner

	mu    sync.Mutex
	conns map[connKey]*conn
	// pending are kicks that could not be sent (NATS unreachable).
	pending map[connKey]struct{}

	work chan *nats.Msg
	stop chan struct{}
	wg   sync.WaitGroup

	accepted, refused, kicks, kickFailures, adopted atomic.Int64
}

// connKey names a client connection cluster-wide: a server's ID (a fresh
// key each time the server starts) and the connection's ID on it.
type connKey struct {
	server string
	cid    uint64
}

// conn is tokenauth.Client for a NATS client: its kicks are $SYS
// requests. NATS has no way to send one connection a message, and no
// in-session renewal, so Notify and Restrict do nothing.
type conn struct {
	c     *Callout
	key   connKey
	since time.Time

	mu      sync.Mutex
	session *tokenauth.Session // set once the Authority admitted it
	ended   bool               // end was called (perhaps before session was set)
}

// follow attaches the connection's session; one that ended meanwhile (its
// DISCONNECT advisory came first) ends the session at once.
func (k *conn) follow(s *tokenauth.Session) {
	k.mu.Lock()
	ended := k.ended
	if !ended {
		k.session = s
	}
	k.mu.Unlock()
	if ended {
		s.End()
	}
}

// end ends the connection's session, now or when it is attached.
func (k *conn) end() {
	k.mu.Lock()
	k.ended = true
	s := k.session
	k.mu.Unlock()
	if s != nil {
		s.End()
	}
}

func (k *conn) Notify(tokenauth.Notice)          {}
func (k *conn) Restrict(*tokenauth.Rights)       {}
func (k *conn) Disconnect(cause tokenauth.Cause) { k.c.kick(k.key, cause.String()) }
func (k *conn) Close(cause tokenauth.Cause)      { k.c.kick(k.key, cause.String()) }
func (k *conn) String() string                   { return fmt.Sprintf("%s/%d", k.key.server, k.key.cid) }
func (c *Callout) remember(k *conn)              { c.mu.Lock(); c.conns[k.key] = k; c.mu.Unlock() }
func (c *Callout) known(key connKey) (k *conn, ok bool) {
	c.mu.Lock()
	k, ok = c.conns[key]
	c.mu.Unlock()
	return
}

// Start connects to NATS as the callout user and as the system user and
// begins answering. It fails if either login fails.
func Start(cfg Config) (*Callout, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 1500 * time.Millisecond
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 64
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Issuer == nil || cfg.Authority == nil || cfg.Tokens == nil || cfg.Account == "" {
		return nil, errors.New("natsauth: Issuer, Authority, Tokens and Account are required")
	}
	issuer, err := cfg.Issuer.PublicKey()
	if err != nil || !nkeys.IsValidPublicAccountKey(issuer) {
		return nil, fmt.Errorf("natsauth: the issuer must be an account key (SA… seed): %v", err)
	}
	signer, err := newFastKey(cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("natsauth: the issuer key: %w", err)
	}
	c := &Callout{cfg: cfg, log: cfg.Logger.With("component", "nats-callout"), issuer: issuer, signer: signer,
		conns: make(map[connKey]*conn), pending: make(map[connKey]struct{}),
		work: make(chan *nats.Msg, 4*cfg.Workers), stop: make(chan struct{})}
	c.levels = &dollarScanner{tokens: cfg.Tokens, instanceID: cfg.Authority.InstanceID()}
	c.levels.refresh(context.Background(), c.log)

	common := []nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond), nats.RetryOnFailedConnect(false),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { c.log.Warn("nats error", "err", err) })}
	c.sysConn, err = nats.Connect(cfg.URL, append(common, nats.Name("tokenmq-callout-system"), nats.UserInfo(cfg.SystemUser, cfg.SystemPassword),
		nats.ReconnectHandler(func(*nats.Conn) { c.log.Info("nats system connection back"); go c.reconcile() }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { c.log.Warn("nats system connection lost", "err", err) }))...)
	if err != nil {
		return nil, fmt.Errorf("nats: system user %q: %w", cfg.SystemUser, err)
	}
	for _, ev := range []string{"CONNECT", "DISCONNECT"} {
		subj := fmt.Sprintf("$SYS.ACCOUNT.%s.%s", cfg.Account, ev)
		if _, err := c.sysConn.Subscribe(subj, c.event); err != nil {
			c.sysConn.Close()
			return nil, fmt.Errorf("nats: subscribe %s: %w", subj, err)
		}
	}
	// One answering connection per server URL: a request is answered by
	// the callout connection on its own server when there is one, and a
	// server lost takes only its own connection away (the request of a
	// client connecting elsewhere meanwhile does not wait for interest to
	// travel the routes again).
	handler := func(m *nats.Msg) {
		select {
		case c.work <- m:
		default: // every worker busy and the queue full: refuse now rather than time out
			c.refused.Add(1)
			c.log.Warn("nats authorization refused: callout overloaded")
			_ = m.Respond(nil)
		}
	}
	for _, url := range splitURLs(cfg.URL) {
		nc, err := nats.Connect(url, append(common, nats.Name("tokenmq-callout"), nats.UserInfo(cfg.User, cfg.Password),
			nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { c.log.Warn("nats callout connection lost", "url", url, "err", err) }),
			nats.ReconnectHandler(func(nc *nats.Conn) { c.log.Info("nats callout connection back", "server", nc.ConnectedUrlRedacted()) }))...)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("nats: callout user %q at %s: %w", cfg.User, url, err)
		}
		c.authConns = append(c.authConns, nc)
		if _, err := nc.QueueSubscribe(AuthSubject, "tokenmq", handler); err != nil {
			c.Close()
			return nil, fmt.Errorf("nats: subscribe %s: %w", AuthSubject, err)
		}
		if err := nc.Flush(); err != nil {
			c.Close()
			return nil, fmt.Errorf("nats: %w", err)
		}
	}
	for range cfg.Workers {
		c.wg.Add(1)
		go c.worker()
	}
	c.wg.Add(1)
	go c.housekeeping()
	go c.reconcile()
	c.log.Info("nats callout answering", "url", cfg.URL, "account", cfg.Account, "issuer", issuer)
	return c, nil
}

// Close stops answering and closes the NATS connections. Clients stay
// connected; a callout started later takes them on (reconcile).
func (c *Callout) Close() {
	select {
	case <-c.stop:
		return
	default:
	}
	close(c.stop)
	for _, nc := range c.authConns {
		nc.Close()
	}
	c.wg.Wait()
	if c.sysConn != nil {
		c.sysConn.Close()
	}
	c.mu.Lock()
	for _, k := range c.conns {
		k.end()
	}
	c.conns = map[connKey]*conn{}
	c.mu.Unlock()
}

// Stats returns the callout's counters.
func (c *Callout) Stats() Stats {
	return Stats{Accepted: c.accepted.Load(), Refused: c.refused.Load(), Kicks: c.kicks.Load(),
		KickFailures: c.kickFailures.Load(), Adopted: c.adopted.Load()}
}

// Connected reports whether both NATS connections are up: the callout can
// answer and disconnect. While one is down (a server lost, until the
// client library reconnects to another) new clients are refused.
func (c *Callout) Connected() bool {
	if !c.sysConn.IsConnected() {
		return false
	}
	for _, nc := range c.authConns {
		if nc.IsConnected() {
			return true
		}
	}
	return false
}

// splitURLs is the distinct URLs of a comma-separated list.
func splitURLs(list string) []string {
	var out []string
	for _, u := range strings.Split(list, ",") {
		if u = strings.TrimSpace(u); u != "" && !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out
}

// Connections returns how many client connections the callout follows.
func (c *Callout) Connections() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.conns)
}

func (c *Callout) worker() {
	defer c.wg.Done()
	for {
		select {
		case <-c.stop:
			return
		case m := <-c.work:
			c.answer(m)
		}
	}
}

// answer decides one authorization request.
func (c *Callout) answer(m *nats.Msg) {
	rc, err := jwt.DecodeAuthorizationRequestClaims(string(m.Data))
	if err != nil {
		c.refused.Add(1)
		c.log.Warn("nats authorization request not understood", "err", err)
		_ = m.Respond(nil)
		return
	}
	req := rc.AuthorizationRequest
	refuse := func(why string) {
		c.refused.Add(1)
		c.respond(m, req, "", why)
	}
	ci := req.ClientInformation
	if ci.Type != "mqtt" {
		c.log.Info("nats connect refused", "remote", ci.Host, "reason", "not_mqtt", "type", ci.Type)
		refuse("tokenmq authorizes MQTT clients only")
		return
	}
	k := &conn{c: c, key: connKey{req.Server.ID, ci.ID}, since: time.Now()}
	pw := req.ConnectOptions.Password
	s, ref := c.cfg.Authority.Connect(tokenauth.ConnectRequest{
		ClientID: ci.MQTT, Remote: ci.Host, ProtocolVersion: 4,
		Username: []byte(req.ConnectOptions.Username), Password: []byte(pw), HasPassword: pw != "",
	}, k)
	if ref != nil {
		refuse(ref.Reason) // logged by the Authority
		return
	}
	k.follow(s)
	read, write := s.Resources()
	p := Translate(read, write, c.levels.get())
	if len(p.LeftOut) > 0 {
		c.log.Info("nats permissions narrower than the token", "client", ci.MQTT, "left_out", strings.Join(p.LeftOut, "; "))
	}
	expires := s.Expiry()
	uc := jwt.NewUserClaims(req.UserNkey)
	uc.Audience = c.cfg.Account
	uc.Name = identity(s)
	// NATS ends the connection within the second after Expires; tokenmq's
	// own timer kicks it at the token's expiry, this is the backstop.
	uc.Expires = int64(math.Floor(float64(expires.UnixMilli()) / 1000))
	uc.AllowedConnectionTypes.Add(jwt.ConnectionTypeMqtt, jwt.ConnectionTypeMqttWS)
	uc.Pub.Allow.Add(p.PubAllow...)
	uc.Pub.Deny.Add(p.PubDeny...)
	uc.Sub.Allow.Add(p.SubAllow...)
	uc.Sub.Deny.Add(p.SubDeny...)
	ujwt, err := uc.Encode(c.signer)
	if err != nil {
		s.End()
		c.log.Error("nats authorization: encoding the user failed", "client", ci.MQTT, "err", err)
		refuse("internal error")
		return
	}
	c.remember(k)
	if !c.respond(m, req, ujwt, "") {
		c.forget(k.key)
		s.End()
		return
	}
	c.accepted.Add(1)
	s.Establish()
}

// respond answers a request with a user JWT, or refuses it with why.
func (c *Callout) respond(m *nats.Msg, req jwt.AuthorizationRequest, userJWT, why string) bool {
	cr := jwt.NewAuthorizationResponseClaims(req.UserNkey)
	cr.Audience = req.Server.ID
	cr.Jwt, cr.Error = userJWT, why
	out, err := cr.Encode(c.signer)
	if err != nil {
		c.log.Error("nats authorization: encoding the answer failed", "err", err)
		_ = m.Respond(nil)
		return false
	}
	if err := m.Respond([]byte(out)); err != nil {
		c.log.Warn("nats authorization: answer not sent", "err", err)
		return false
	}
	return true
}

func (c *Callout) forget(key connKey) *conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := c.conns[key]
	delete(c.conns, key)
	delete(c.pending, key)
	return k
}

// kick disconnects a client through the system account. If NATS cannot be
// reached the kick is kept and retried; reconcile also finds the client.
func (c *Callout) kick(key connKey, why string) {
	err := c.sendKick(key)
	if err == nil {
		c.kicks.Add(1)
		if k := c.forget(key); k != nil {
			k.end() // its DISCONNECT advisory will find nothing to end
		}
		return
	}
	c.kickFailures.Add(1)
	c.log.Warn("nats kick failed; retrying", "server", key.server, "cid", key.cid, "reason", why, "err", err)
	c.mu.Lock()
	c.pending[key] = struct{}{}
	c.mu.Unlock()
}

// kickResponse is nats-server's ServerAPIResponse, what a kick needs of it.
type kickResponse struct {
	Error *struct {
		Code        int    `json:"code"`
		Description string `json:"description"`
	} `json:"error"`
}

func (c *Callout) sendKick(key connKey) error {
	msg, err := c.sysConn.Request(fmt.Sprintf("$SYS.REQ.SERVER.%s.KICK", key.server), fmt.Appendf(nil, `{"cid":%d}`, key.cid), 900*time.Millisecond)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return nil // that server is gone, and its clients with it
		}
		return err
	}
	var r kickResponse
	if err := jsonUnmarshal(msg.Data, &r); err != nil {
		return fmt.Errorf("kick answer: %w", err)
	}
	if r.Error != nil && !strings.Contains(r.Error.Description, "no such client") {
		return fmt.Errorf("kick refused: %d %s", r.Error.Code, r.Error.Description)
	}
	return nil
}

// housekeeping retries kicks that failed and refreshes the '$' levels.
func (c *Callout) housekeeping() {
	defer c.wg.Done()
	retry := time.NewTicker(250 * time.Millisecond)
	defer retry.Stop()
	scan := time.NewTicker(time.Minute)
	defer scan.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-retry.C:
			c.mu.Lock()
			var keys []connKey
			for k := range c.pending {
				keys = append(keys, k)
			}
			c.mu.Unlock()
			for _, k := range keys {
				if c.sendKick(k) == nil {
					c.kicks.Add(1)
					if kc := c.forget(k); kc != nil {
						kc.end()
					}
				}
			}
		case <-scan.C:
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			c.levels.refresh(ctx, c.log)
			cancel()
		}
	}
}

// identity is the NATS user name of a connection: its credential form,
// access key and the tokens it holds by ID (public, never the tokens), from
// which a callout that did not admit it takes it on (adopt).
func identity(s *tokenauth.Session) string {
	form, ak := s.Credential()
	if ak == "" {
		ak = "-"
	}
	f := "plain"
	if form == tokenauth.FormApsara {
		f = "apsara"
	}
	var b strings.Builder
	b.WriteString("tokenmq " + f + " " + ak)
	for _, g := range s.Grants() {
		b.WriteString(" " + tokenauth.TypeName(g.Type) + ":" + g.Grant.TokenID.String())
	}
	return b.String()
}

// parseIdentity reads identity back.
func parseIdentity(name string) (form tokenauth.Form, ak string, held []heldID, ok bool) {
	parts := strings.Fields(name)
	if len(parts) < 4 || parts[0] != "tokenmq" {
		return 0, "", nil, false
	}
	switch parts[1] {
	case "plain":
		form = tokenauth.FormPlain
	case "apsara":
		form = tokenauth.FormApsara
	default:
		return 0, "", nil, false
	}
	ak = parts[2]
	if ak == "-" {
		ak = ""
	}
	for _, p := range parts[3:] {
		typ, id, found := strings.Cut(p, ":")
		a, okType := tokenauth.ParseType(typ)
		tid, err := token.ParseID(id)
		if !found || !okType || err != nil {
			return 0, "", nil, false
		}
		held = append(held, heldID{id: tid, typ: a})
	}
	return form, ak, held, true
}

type heldID struct {
	id  token.ID
	typ token.Actions
}

// fastKey is an nkeys.KeyPair that derives its ed25519 key once: nkeys'
// own re-derives it from the seed on every Sign and PublicKey, which was a
// quarter of the callout's CPU per answer (two signatures each).
type fastKey struct {
	nkeys.KeyPair
	pub  string
	priv ed25519.PrivateKey
}

func newFastKey(kp nkeys.KeyPair) (*fastKey, error) {
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, err
	}
	seed, err := kp.Seed()
	if err != nil {
		return nil, err
	}
	_, raw, err := nkeys.DecodeSeed(seed)
	if err != nil {
		return nil, err
	}
	return &fastKey{KeyPair: kp, pub: pub, priv: ed25519.NewKeyFromSeed(raw)}, nil
}

func (k *fastKey) PublicKey() (string, error)        { return k.pub, nil }
func (k *fastKey) Sign(input []byte) ([]byte, error) { return ed25519.Sign(k.priv, input), nil }
