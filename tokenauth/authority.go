package tokenauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokenmq/tokenmq/token"
)

// Config configures an Authority.
type Config struct {
	// InstanceID is the instance the broker serves. Required.
	InstanceID string
	// Validator checks tokens (the in-process token.Service, or api.Client
	// over HTTP). Required.
	Validator Validator
	// Feed delivers revocations. Required.
	Feed RevocationFeed
	// Cache sizes the validation cache.
	Cache CacheConfig
	// AllowPlain accepts the plain form (any username, bare token). Default false.
	AllowPlain bool
	// ExpireNotice is how long before a token's expiry $SYS/tokenExpireNotice
	// is sent; 0 turns it off.
	ExpireNotice time.Duration
	// FeedWait is the long-poll wait of the revocation feed. Default 20s.
	FeedWait time.Duration
	// Observer receives the decisions, for metrics. Default: none.
	Observer Observer
	// Logger receives the logs; never tokens. Default slog.Default().
	Logger *slog.Logger
	// Registry, if set, is told this broker's connections (ListClients):
	// what changed within ReportFlush (default DefaultReportFlush), and
	// everything again whenever it asks; a heartbeat every ReportInterval
	// (default DefaultReportInterval). BrokerID names this process in the
	// reports (default: host name and a random part).
	Registry       ClientRegistry
	ReportFlush    time.Duration
	ReportInterval time.Duration
	BrokerID       string
	// Discard, if set, is called for every kick heard on the feed (KickClient,
	// SPEC §2.2): the adapter discards a session of that client ID it keeps
	// offline that ended before the kick. A connected client's session is
	// discarded through Client.Disconnect (CauseKicked).
	Discard func(clientID string, kickedAt time.Time)
	// Clock is the time of expiry decisions and timers. Default
	// SystemClock{}.
	Clock Clock
	// Events, if set, is told every decision the core makes about a
	// connection (Event), synchronously: it must not block.
	Events func(Event)
	// SentCode, if set, is the CONNACK code the adapter's broker sends for
	// a refusal (a broker may not let it choose), for the log; the
	// protocol version is 4 or 5. Default: the refusal's code.
	SentCode func(r *Refusal, protocolVersion byte) string
}

// Authority is the broker-neutral half of token authentication: it admits
// connections (Connect), keeps each one's rights and timers (Session),
// follows revocations and kicks the connections that relied on a revoked
// token. An adapter (the Mochi hook, a plugin, a callout) drives it with
// its broker's events and carries out its decisions through Client.
type Authority struct {
	cfg   Config
	cache *Cache
	log   *slog.Logger
	obs   Observer

	idxMu   sync.Mutex
	byToken map[token.ID]map[*Session]struct{}

	stop      chan struct{}
	done      sync.WaitGroup
	startOnce sync.Once
	closeOnce sync.Once

	feedHealthy atomic.Bool

	// The connections, for reports and kicks (clients.go).
	connMu  sync.Mutex
	connSeq uint64
	conns   map[uint64]*Session
	added   map[uint64]struct{} // connections to report
	gone    []uint64            // connections to report gone
	// startHead is the feed's head when the follower first read it: kicks
	// up to it are from before this Authority started (follow goroutine only).
	startHead uint64
}

// New returns an Authority. It does no I/O; Start begins following
// revocations.
func New(cfg Config) (*Authority, error) {
	if cfg.Validator == nil || cfg.Feed == nil {
		return nil, errors.New("tokenauth: Validator and Feed are required")
	}
	if err := token.ValidateInstanceID(cfg.InstanceID); err != nil {
		return nil, fmt.Errorf("tokenauth: %w", err)
	}
	if cfg.FeedWait <= 0 {
		cfg.FeedWait = 20 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	if cfg.ReportFlush <= 0 {
		cfg.ReportFlush = DefaultReportFlush
	}
	if cfg.ReportInterval <= 0 {
		cfg.ReportInterval = DefaultReportInterval
	}
	if cfg.BrokerID == "" {
		cfg.BrokerID = newBrokerID()
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	cache, err := NewCache(cfg.Validator, cfg.InstanceID, cfg.Cache, cfg.Clock.Now)
	if err != nil {
		return nil, err
	}
	cache.observe = cfg.Observer.Validation
	return &Authority{cfg: cfg, cache: cache, log: log, obs: cfg.Observer,
		byToken: make(map[token.ID]map[*Session]struct{}), stop: make(chan struct{}),
		conns: make(map[uint64]*Session), added: make(map[uint64]struct{})}, nil
}

// Cache returns the validation cache (for stats).
func (a *Authority) Cache() *Cache { return a.cache }

// Now is the Authority's clock's time: what adapters check expiry against
// (Session.Permits).
func (a *Authority) Now() time.Time { return a.cfg.Clock.Now() }

// Observer returns the observer adapters report their own decisions to
// (ACL denials).
func (a *Authority) Observer() Observer { return a.obs }

// InstanceID returns the instance the authority serves.
func (a *Authority) InstanceID() string { return a.cfg.InstanceID }

// FeedHealthy reports whether the last revocation-feed call succeeded.
func (a *Authority) FeedHealthy() bool { return a.feedHealthy.Load() }

// Start begins following the revocation feed and housekeeping. Calls after
// the first do nothing.
func (a *Authority) Start() {
	a.startOnce.Do(func() {
		a.done.Add(2)
		go a.follow()
		go a.janitor()
		if a.cfg.Registry != nil {
			a.done.Add(1)
			go a.report()
		}
	})
}

// Close stops following revocations and the timers of every session. It is
// idempotent.
func (a *Authority) Close() {
	a.closeOnce.Do(func() {
		close(a.stop)
		a.done.Wait()
		a.idxMu.Lock()
		var all []*Session
		for _, m := range a.byToken {
			for s := range m {
				all = append(all, s)
			}
		}
		a.idxMu.Unlock()
		for _, s := range all {
			s.mu.Lock()
			s.stopTimersLocked()
			s.mu.Unlock()
		}
	})
}

// ConnectRequest is what the core needs of a CONNECT.
type ConnectRequest struct {
	ClientID string
	Remote   string // for logs
	// ProtocolVersion is the MQTT version (4: 3.1.1, 5); the log names the
	// CONNACK code that version gets.
	ProtocolVersion byte
	Username        []byte
	Password        []byte
	// HasPassword is the CONNECT's password flag.
	HasPassword bool
	// AuthMethod and AuthData are MQTT 5's Authentication Method and Data:
	// with method AuthMethod, the data may carry the token instead of the
	// password.
	AuthMethod string
	AuthData   []byte
	// Ctx, if set, bounds the token service calls this CONNECT makes (the
	// cache's query timeout bounds each anyway).
	Ctx context.Context
	// Persistent is whether the session outlives the connection (MQTT
	// 3.1.1 CleanSession 0; MQTT 5 a Session Expiry Interval), for
	// ListClients.
	Persistent bool
	// WillTopic is the Will's topic, if the CONNECT has one (HasWill).
	HasWill   bool
	WillTopic string
}

// Connect authenticates a CONNECT (SPEC §3.1) and, if it is accepted,
// returns the connection's Session, indexed for revocations, with client
// as the adapter's side of it. A refusal says which code to answer with.
// Either way the decision is logged and observed.
func (a *Authority) Connect(req ConnectRequest, client Client) (*Session, *Refusal) {
	s, ref := a.connect(req, client)
	if ref != nil {
		level := slog.LevelInfo
		if ref.Code == ReasonUnavailable {
			level = slog.LevelWarn
		}
		a.obs.ConnectDecision("refused", ref.Reason)
		code := ref.Code.String()
		if req.ProtocolVersion != 0 && req.ProtocolVersion < 5 {
			code = ReasonCode(ref.Code.V3()).String()
		}
		if a.cfg.SentCode != nil {
			code = a.cfg.SentCode(ref, req.ProtocolVersion)
		}
		attrs := []any{"client", req.ClientID, "remote", req.Remote, "reason", ref.Reason, "code", code}
		if ref.TokenID != "" {
			attrs = append(attrs, "token_id", ref.TokenID)
		}
		if ref.Err != nil && ref.Code == ReasonUnavailable {
			attrs = append(attrs, "err", ref.Err)
		}
		a.log.Log(context.Background(), level, "connect refused", attrs...)
		a.record(Event{Kind: "connect", ClientID: req.ClientID, Remote: req.Remote, Result: "refused", Reason: ref.Reason, Code: ref.Code})
		return nil, ref
	}
	a.index(s)
	a.track(s)
	a.obs.ConnectDecision("accepted", "ok")
	if a.cfg.Events != nil {
		a.record(Event{Kind: "connect", ClientID: req.ClientID, Remote: req.Remote, Result: "accepted", Reason: "ok", TokenIDs: s.TokenIDs()})
	}
	if a.log.Enabled(context.Background(), slog.LevelInfo) {
		a.log.Info("connect accepted", "client", req.ClientID, "remote", req.Remote, "token_id", joinIDs(s.TokenIDs()))
	}
	return s, nil
}

func (a *Authority) connect(req ConnectRequest, client Client) (*Session, *Refusal) {
	password, hasPassword := req.Password, req.HasPassword
	byAuthMethod := req.AuthMethod == AuthMethod
	if byAuthMethod && !hasPassword { // MQTT 5: the token as Authentication Data
		password, hasPassword = req.AuthData, len(req.AuthData) > 0
	}
	if req.AuthMethod != "" && !byAuthMethod {
		return nil, &Refusal{Code: ReasonBadAuthMethod, Reason: "bad_authentication_method"}
	}
	creds, err := ParseCredentials(req.Username, password, hasPassword, a.cfg.AllowPlain)
	if err != nil {
		return nil, &Refusal{Code: ReasonBadCredentials, Reason: "malformed_credentials", Err: err}
	}
	ctx := req.Ctx
	if ctx == nil {
		ctx = context.Background()
	}
	hs, ref := Authenticate(ctx, a.cache, a.cfg.InstanceID, req.ClientID, creds) // a miss's call is bounded by QueryTimeout
	if ref != nil {
		return nil, ref
	}
	s := newSession(a, client, req, creds, hs)
	s.authMethod.Store(byAuthMethod)
	if req.HasWill && !s.Rights().Writable(req.WillTopic) {
		return nil, &Refusal{Code: ReasonNotAuthorized, Reason: "will_not_allowed", TokenID: joinIDs(s.TokenIDs())}
	}
	return s, nil
}

// record tells Config.Events of e.
func (a *Authority) record(e Event) {
	if a.cfg.Events != nil {
		e.Time = a.cfg.Clock.Now()
		a.cfg.Events(e)
	}
}

// janitor forgets expired revocations and cached answers.
func (a *Authority) janitor() {
	defer a.done.Done()
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
			a.cache.Prune()
			a.cache.PurgeExpired()
		}
	}
}
