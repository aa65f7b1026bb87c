package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/tokenmq/tokenmq/api"
	"github.com/tokenmq/tokenmq/config"
	"github.com/tokenmq/tokenmq/hook"
	"github.com/tokenmq/tokenmq/metrics"
	"github.com/tokenmq/tokenmq/natsauth"
	"github.com/tokenmq/tokenmq/sessionstore"
	"github.com/tokenmq/tokenmq/token"
	"github.com/tokenmq/tokenmq/token/boltstore"
	"github.com/tokenmq/tokenmq/token/pgstore"
	"github.com/tokenmq/tokenmq/tokenauth"
)

// KeyringFile holds the server keys that mint and verify tokens (mode 0600),
// under the data directory.
const KeyringFile = "keys.json"

// Options configure a Server.
type Options struct {
	// Config is the validated configuration, defaults set.
	Config config.Config
	// AccessKeys are the token API's access keys (roles all and tokens).
	AccessKeys []api.AccessKey
	// ClientKey is the key a broker-role process signs QueryToken and
	// ListRevocations with (role broker).
	ClientKey api.AccessKey
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Clock, if set, is the time tokens expire by, and their notices and
	// disconnects fire on (tokenmqtest's). Not reachable from a config.
	Clock tokenauth.Clock
	// Events, if set, is told every connect decision, renewal and
	// disconnect of the broker's core (tokenauth.Config.Events).
	Events func(tokenauth.Event)
}

// Server is one tokenmq process.
type Server struct {
	cfg       config.Config
	keys      *api.Keys
	clientKey api.AccessKey
	log       *slog.Logger

	startOnce sync.Once
	stopOnce  sync.Once
	stopErr   error
	ready     atomic.Bool

	clock  tokenauth.Clock
	events func(tokenauth.Event)

	store   token.Store
	svc     *token.Service
	watch   context.CancelFunc // stops following a shared store's revocations
	emqx    http.Handler       // POST /mqtt/auth, when configured
	httpSrv *http.Server
	apiLn   net.Listener
	gcStop  chan struct{}
	gcDone  chan struct{}

	mqtt      *mqtt.Server
	connLimit *connLimit          // broker.max_connections, shared by the MQTT listeners
	state     *sessionstore.Store // the broker's durable state (persistence bolt)
	auth      *tokenauth.Authority
	natsAuth  *tokenauth.Authority
	callout   *natsauth.Callout
	hook      *hook.Hook
	listeners map[string]*listener // by protocol: tcp, ws, tls

	metrics *metrics.Metrics
}

// New checks the options and returns a Server; it does no I/O.
func New(opts Options) (*Server, error) {
	cfg := opts.Config
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, clientKey: opts.ClientKey, log: opts.Logger, listeners: map[string]*listener{}, metrics: metrics.New(),
		clock: opts.Clock, events: opts.Events}
	if s.clock == nil {
		s.clock = tokenauth.SystemClock{}
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.servesTokens() {
		keys, err := api.NewKeys(opts.AccessKeys)
		if err != nil {
			return nil, err
		}
		if keys.Len() == 0 {
			return nil, errors.New("no access keys: the token API would accept no caller")
		}
		s.keys = keys
	}
	if cfg.Role == config.RoleBroker && (opts.ClientKey.ID == "" || opts.ClientKey.Secret == "") {
		return nil, errors.New("role broker signs its calls to the token service with TOKENMQ_ACCESS_KEY_ID and TOKENMQ_ACCESS_KEY_SECRET; set them")
	}
	return s, nil
}

func (s *Server) servesTokens() bool { return s.cfg.Role != config.RoleBroker }
func (s *Server) runsBroker() bool   { return s.cfg.Role != config.RoleTokens }

// Start opens the store and binds every listener; it returns once they are
// all bound (or on the first failure, having released what it opened). It
// may be called once.
func (s *Server) Start(ctx context.Context) error {
	err := errors.New("server already started")
	s.startOnce.Do(func() { err = s.start(ctx) })
	return err
}

func (s *Server) start(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			s.release(context.Background())
		}
	}()
	var rpc http.Handler
	if s.servesTokens() {
		if rpc, err = s.startTokenService(ctx); err != nil {
			return err
		}
	}
	if s.runsBroker() {
		if err := s.startBroker(ctx); err != nil {
			return err
		}
	}
	if s.cfg.NATS.URL != "" && s.svc != nil {
		if err := s.startNATS(); err != nil {
			return err
		}
	}
	var lc net.ListenConfig
	if s.apiLn, err = lc.Listen(ctx, "tcp", s.cfg.APIAddr); err != nil {
		return fmt.Errorf("api listener: %w", err)
	}
	s.httpSrv = &http.Server{
		Handler:           s.mux(rpc),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      api.MaxFeedWait + 10*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	go func() {
		if err := s.httpSrv.Serve(s.apiLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("api server stopped", "err", err)
		}
	}()
	s.log.Info("listening", "listener", "api", "addr", s.apiLn.Addr().String())
	if s.mqtt != nil {
		if err := s.mqtt.Serve(); err != nil {
			return fmt.Errorf("mqtt: %w", err)
		}
		s.auth.Start()
		s.hook.Start()
		for _, p := range []string{"tcp", "ws", "tls"} {
			if l := s.listeners[p]; l != nil {
				s.log.Info("listening", "listener", "mqtt-"+p, "addr", l.Address())
			}
		}
	}
	s.ready.Store(true)
	s.log.Info("ready", "role", s.cfg.Role, "instance", s.cfg.InstanceID, "instances", s.cfg.Tokens.Instances, "data_dir", s.cfg.DataDir)
	return nil
}

// startTokenService opens the store and returns the RPC handler.
func (s *Server) startTokenService(ctx context.Context) (http.Handler, error) {
	if err := os.MkdirAll(s.cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	var pg *pgstore.Store
	if s.cfg.Store != "" {
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		st, err := pgstore.Open(octx, s.cfg.Store)
		cancel()
		if err != nil {
			return nil, err
		}
		s.store, pg = st, st
	} else {
		st, err := boltstore.Open(filepath.Join(s.cfg.DataDir, boltstore.FileName), 2*time.Second)
		if err != nil {
			return nil, err
		}
		s.store = st
	}
	keyring := s.cfg.Tokens.KeyringFile
	if keyring == "" {
		keyring = filepath.Join(s.cfg.DataDir, KeyringFile)
	}
	if err := s.checkKeysPresent(ctx, keyring); err != nil {
		return nil, err
	}
	kr, err := token.LoadOrCreateKeyring(keyring)
	if err != nil {
		return nil, err
	}
	s.svc, err = token.NewService(s.store, kr, token.ServiceConfig{
		Instances: s.cfg.Tokens.Instances, MinTTL: s.cfg.Tokens.MinTTL, MaxTTL: s.cfg.Tokens.MaxTTL,
		GCGrace: s.cfg.Tokens.GCGrace, Logger: s.log, Now: s.clock.Now,
	})
	if err != nil {
		return nil, err
	}
	svc := s.svc
	stat := statOf(svc.Stats)
	s.metrics.CounterFunc("tokens_issued_total", "Tokens issued by ApplyToken.", stat(func(t token.Stats) int64 { return t.Applies }))
	s.metrics.CounterFunc("token_queries_total", "Token validations at the token service (QueryToken, in-process brokers).", stat(func(t token.Stats) int64 { return t.Queries }))
	s.metrics.CounterFunc("token_store_lookups_total", "Store reads by token validations; forged, malformed and expired tokens cause none.", stat(func(t token.Stats) int64 { return t.StoreLookups }))
	s.metrics.CounterFunc("revocations_total", "Tokens revoked through this token service.", stat(func(t token.Stats) int64 { return t.Revocations }))
	s.metrics.CounterFunc("token_store_errors_total", "Token store reads and writes that failed: a damaged store, an unreachable database.", stat(func(t token.Stats) int64 { return t.StoreErrors }))
	a := s.cfg.API
	acfg := api.Config{
		Service: s.svc, Keys: s.keys, TimestampWindow: a.TimestampWindow, NonceCapacity: a.NonceCapacity,
		MaxBodyBytes: a.MaxBodyBytes, Logger: s.log, Observer: s.metrics,
		RateLimits: api.RateLimits{
			ApplyToken: a.RateLimits.ApplyToken, QueryToken: a.RateLimits.QueryToken,
			BrokerQueryToken: a.RateLimits.BrokerQueryToken, Other: a.RateLimits.Other,
		},
	}
	if pg != nil { // replicas share nonces, rate counts and revocation wake-ups
		acfg.SharedNonces, acfg.SharedRates = pg, pg
		wctx, cancel := context.WithCancel(context.Background())
		s.watch = cancel
		go pg.Watch(wctx, s.svc.NotifyRevocations)
	}
	h, err := api.NewHandler(acfg)
	if err != nil {
		return nil, err
	}
	if a.EMQXSecret != "" {
		s.emqx = api.NewEMQXAuth(s.svc, s.cfg.InstanceID, a.EMQXSecret, s.cfg.Broker.AllowPlainToken, s.log)
	}
	s.gcStop, s.gcDone = make(chan struct{}), make(chan struct{})
	go s.collectLoop()
	return h, nil
}

// startBroker assembles Mochi with the auth hook and binds the MQTT listeners.
func (s *Server) startBroker(ctx context.Context) error {
	b := s.cfg.Broker
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = b.MaxPacketSize
	caps.MaximumClientWritesPending = b.MaxPendingWrites
	caps.MaximumSessionExpiryInterval = uint32(b.MaxSessionExpiry / time.Second)
	// Queued messages live as long as their session, retained ones until
	// replaced (Mochi's default drops both after a day); MQTT 5 Message
	// Expiry Intervals still apply.
	caps.MaximumMessageExpiryInterval = 0
	caps.MaximumInflight = max(caps.MaximumInflight, uint16(b.MaxQueuedMessages))
	s.mqtt = mqtt.New(&mqtt.Options{
		Capabilities:             caps,
		ClientNetWriteBufferSize: b.WriteBufferSize,
		Logger:                   slog.New(floorHandler{s.log.Handler(), slog.LevelWarn}).With("component", "mochi"),
	})
	var validator tokenauth.Validator
	var feed tokenauth.RevocationFeed
	var registry tokenauth.ClientRegistry // nil in process: the service lists the Authority's connections itself
	if s.svc != nil {
		validator, feed = s.svc, s.svc
	} else {
		// At most tokenServiceConns connections to the token service: a
		// storm of CONNECTs with new tokens queues for them instead of
		// opening one each, which would spend the descriptors kept in
		// reserve past broker.max_connections (and refuse clients with
		// EMFILE).
		c := &api.Client{Endpoint: s.cfg.TokenService, AccessKeyID: s.clientKey.ID, AccessKeySecret: s.clientKey.Secret,
			HTTPClient: &http.Client{Transport: &http.Transport{MaxConnsPerHost: tokenServiceConns, MaxIdleConnsPerHost: tokenServiceConns, IdleConnTimeout: time.Minute}}}
		validator, feed, registry = c, c, c
	}
	var h *hook.Hook // kicks heard on the feed discard its offline sessions
	auth, err := tokenauth.New(tokenauth.Config{
		InstanceID: s.cfg.InstanceID, Validator: validator, Feed: feed, Registry: registry, Cache: b.Cache,
		Discard:    func(clientID string, at time.Time) { h.Discard(clientID, at) },
		AllowPlain: b.AllowPlainToken, ExpireNotice: b.ExpireNotice, Logger: s.log, Observer: s.metrics,
		Clock: s.clock, Events: s.events,
	})
	if err != nil {
		return err
	}
	s.auth = auth
	if s.svc != nil {
		s.svc.AddLocalClients(s.cfg.InstanceID, auth.Connections)
	}
	var restored sessionstore.State
	if b.Persistence == "bolt" {
		if err := os.MkdirAll(s.cfg.DataDir, 0o700); err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		st, err := sessionstore.Open(filepath.Join(s.cfg.DataDir, sessionstore.FileName), 2*time.Second, s.log)
		if err != nil {
			return err
		}
		s.state = st
		if restored, err = st.Load(); err != nil {
			return err
		}
	}
	h, err = hook.New(s.mqtt, auth, hook.Config{
		DenyDisconnect: b.DenyAction == "disconnect", Logger: s.log,
		BackpressurePause: b.BackpressurePause, BackpressureMinRate: b.BackpressureMinRate,
		MaxQueued: b.MaxQueuedMessages, Store: s.state, MaxTopicLevels: b.MaxTopicLevels, MaxSubscriptions: b.MaxSubscriptions,
	})
	if err != nil {
		return err
	}
	s.hook = h
	if s.state != nil {
		h.Restore(restored)
		s.log.Info("broker state read", "sessions", len(restored.Sessions), "messages", len(restored.Messages), "retained", len(restored.Retained))
	}
	if err := s.mqtt.AddHook(h, nil); err != nil {
		return err
	}
	cache := auth.Cache()
	cstat := statOf(cache.Stats)
	s.metrics.CounterFunc("token_cache_hits_total", "CONNECT validations answered from the cache.", cstat(func(c tokenauth.CacheStats) int64 { return c.Hits }))
	s.metrics.CounterFunc("token_cache_misses_total", "CONNECT validations the cache could not answer.", cstat(func(c tokenauth.CacheStats) int64 { return c.Misses }))
	s.metrics.CounterFunc("token_cache_evictions_total", "Cached answers evicted for room.", cstat(func(c tokenauth.CacheStats) int64 { return c.Evictions }))
	s.metrics.CounterFunc("token_cache_stale_served_total", "Stale valid answers used while the token service was unreachable.", cstat(func(c tokenauth.CacheStats) int64 { return c.StaleServed }))
	s.metrics.GaugeFunc("token_cache_entries", "Answers in the validation cache.", func() float64 { return float64(cache.Len()) })
	s.metrics.GaugeFunc("connected_clients", "Authenticated MQTT connections.", func() float64 { return float64(h.Sessions()) })
	s.metrics.CounterFunc("deliveries_dropped_total", "Deliveries dropped because a subscriber's queue was full.", func() float64 { return float64(h.Dropped()) })
	qstat := statOf(h.QueueStats)
	s.metrics.CounterFunc("session_messages_queued_total", "QoS 1/2 messages queued for offline persistent sessions.", qstat(func(q hook.QueueStats) int64 { return q.Queued }))
	s.metrics.CounterFunc("session_messages_dropped_queue_full_total", "QoS 1/2 messages not queued for an offline session: its queue was full (broker.max_queued_messages).", qstat(func(q hook.QueueStats) int64 { return q.DroppedFull }))
	s.metrics.CounterFunc("session_messages_dropped_on_resume_total", "Queued or in-flight messages discarded at resume: the resuming connection's token does not cover them.", qstat(func(q hook.QueueStats) int64 { return q.DroppedOnResume }))
	s.metrics.CounterFunc("sessions_expired_total", "Offline persistent sessions discarded at the end of their expiry interval.", qstat(func(q hook.QueueStats) int64 { return q.ExpiredSessions }))
	s.metrics.GaugeFunc("sessions_offline", "Persistent sessions whose client is offline.", func() float64 { return float64(h.QueueStats().Offline) })
	s.connLimit = &connLimit{max: int64(b.MaxConnections)}
	if s.connLimit.max == 0 {
		s.connLimit.max = defaultMaxConnections()
	}
	s.metrics.GaugeFunc("mqtt_connections_open", "MQTT connections of the process, before and after CONNECT.", func() float64 { return float64(s.connLimit.open.Load()) })
	s.metrics.CounterFunc("mqtt_connections_refused_total", "MQTT connections closed at once: the process had broker.max_connections.", func() float64 { return float64(s.connLimit.refused.Load()) })
	s.metrics.CounterFunc("mqtt_accept_errors_total", "Failed Accepts of the MQTT listeners (out of descriptors, aborted connections); each is retried.", func() float64 {
		var n int64
		for _, l := range s.listeners {
			n += l.acceptErrors.Load()
		}
		return float64(n)
	})
	s.log.Debug("connection limit", "max_connections", s.connLimit.max)
	bind := func(protocol, addr string, wrap func(net.Listener) net.Listener) error {
		if addr == "" {
			return nil
		}
		ln, err := mqttListenConfig.Listen(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("mqtt %s listener: %w", protocol, err)
		}
		if wrap != nil {
			ln = wrap(ln)
		}
		l := &listener{id: protocol, protocol: protocol, ln: ln, connectTimeout: b.ConnectTimeout, maxPacket: b.MaxPacketSize,
			limit: s.connLimit, log: s.log}
		s.listeners[protocol] = l
		return s.mqtt.AddListener(l)
	}
	if err := bind("tcp", s.cfg.MQTTAddr, nil); err != nil {
		return err
	}
	if err := bind("ws", s.cfg.WSAddr, nil); err != nil {
		return err
	}
	if s.cfg.TLSAddr != "" {
		cert, err := tls.LoadX509KeyPair(s.cfg.TLSCert, s.cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if err := bind("tls", s.cfg.TLSAddr, func(ln net.Listener) net.Listener { return tls.NewListener(ln, tc) }); err != nil {
			return err
		}
	}
	return nil
}

// checkKeysPresent refuses to make new server keys over a store that holds
// tokens (SPEC §4): the old keys are what makes them usable, and new ones
// would silently invalidate every token. tokens.accept_key_loss
// (--accept-key-loss) lets an operator accept that.
func (s *Server) checkKeysPresent(ctx context.Context, keyring string) error {
	if _, err := os.Stat(keyring); !errors.Is(err, fs.ErrNotExist) {
		return nil // present (or unreadable: loading it says why)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	empty, err := s.store.Empty(ctx)
	if err != nil {
		return fmt.Errorf("checking the token store before making server keys: %w", err)
	}
	if empty {
		return nil
	}
	if s.cfg.Tokens.AcceptKeyLoss {
		s.log.Warn("server keys missing: making new ones; every existing token stops working", "keyring", keyring)
		return nil
	}
	return fmt.Errorf("the token store holds tokens, but the server keys that made them (%s) are missing: "+
		"restore that file from a backup (or set tokens.keyring_file), or start with --accept-key-loss "+
		"to make new keys and let every existing token stop working", keyring)
}

func (s *Server) mux(rpc http.Handler) http.Handler {
	m := http.NewServeMux()
	if rpc != nil {
		m.Handle("/{$}", rpc)
	}
	if s.emqx != nil {
		m.Handle("/mqtt/auth", s.emqx)
	}
	m.Handle("/metrics", s.metrics.Handler())
	m.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeStatus(w, http.StatusOK, "ok")
	})
	m.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if s.ready.Load() && s.listenersHealthy() && (s.callout == nil || s.callout.Connected()) {
			writeStatus(w, http.StatusOK, "ready")
		} else {
			writeStatus(w, http.StatusServiceUnavailable, "not ready")
		}
	})
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json;charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		if rpc == nil {
			fmt.Fprint(w, `{"Code":"NotFound","Message":"this process runs role broker; the token API is on the token service"}`)
			return
		}
		fmt.Fprint(w, `{"Code":"NotFound","Message":"no such path; the token API is at /"}`)
	})
	return m
}

// listenersHealthy reports whether every MQTT listener accepts (SPEC
// §3.8: not ready while a listener cannot).
func (s *Server) listenersHealthy() bool {
	for _, l := range s.listeners {
		if !l.healthy() {
			return false
		}
	}
	return true
}

func writeStatus(w http.ResponseWriter, code int, status string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, "{\"status\":%q}\n", status)
}

// collectLoop garbage-collects expired and revoked records.
func (s *Server) collectLoop() {
	defer close(s.gcDone)
	t := time.NewTicker(s.cfg.Tokens.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-s.gcStop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			n, err := s.svc.Collect(ctx)
			cancel()
			if err != nil {
				s.log.Warn("token garbage collection failed", "err", err)
			} else if n > 0 {
				s.log.Info("collected expired and revoked tokens", "count", n)
			}
		}
	}
}

// APIAddr returns the bound address of the HTTP listener (nil before Start).
func (s *Server) APIAddr() net.Addr {
	if s.apiLn == nil {
		return nil
	}
	return s.apiLn.Addr()
}

// MQTTAddr returns the bound address of an MQTT listener: "tcp", "ws" or
// "tls" ("" if it does not run).
func (s *Server) MQTTAddr(protocol string) string {
	if l := s.listeners[protocol]; l != nil {
		return l.Address()
	}
	return ""
}

// Service returns the in-process token service (nil in role broker).
func (s *Server) Service() *token.Service { return s.svc }

// Hook returns the broker's auth hook (nil in role tokens).
func (s *Server) Hook() *hook.Hook { return s.hook }

// Authority returns the broker's token authority (nil in role tokens).
func (s *Server) Authority() *tokenauth.Authority { return s.auth }

// SessionOffline reports whether the broker keeps a session for clientID
// whose client is disconnected (its DISCONNECT fully handled).
func (s *Server) SessionOffline(clientID string) bool {
	if s.mqtt == nil {
		return false
	}
	cl, ok := s.mqtt.Clients.Get(clientID)
	return ok && cl.Closed() && cl.StopTime() != 0
}

// ExpireSessions discards, now, the offline sessions whose expiry interval
// has passed by the server's clock (the broker does it every second on
// the system's time): for a test's clock (Options.Clock).
func (s *Server) ExpireSessions() {
	if s.mqtt != nil {
		s.mqtt.ExpireSessions(s.clock.Now().Unix())
	}
}

// Shutdown stops accepting, disconnects MQTT clients with 0x8B (server
// shutting down), lets API requests in flight finish, and closes the store
// (every acknowledged write is already on disk). It is bounded by ctx and
// idempotent.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() {
		s.ready.Store(false)
		s.stopErr = s.release(ctx)
		s.log.Info("stopped")
	})
	return s.stopErr
}

// release stops everything that was started, in order: MQTT, HTTP, GC, store.
func (s *Server) release(ctx context.Context) error {
	var errs []error
	if s.callout != nil {
		s.callout.Close()
	}
	if s.natsAuth != nil {
		s.natsAuth.Close()
	}
	if s.hook != nil {
		s.hook.Close()
	}
	if s.auth != nil {
		s.auth.Close()
	}
	if s.mqtt != nil {
		done := make(chan struct{})
		go func() { _ = s.mqtt.Close(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("mqtt shutdown: %w", ctx.Err()))
		}
	}
	if s.state != nil {
		if err := s.state.Close(); err != nil { // after Mochi: the last disconnects are written
			errs = append(errs, fmt.Errorf("closing broker state: %w", err))
		}
	}
	if s.httpSrv != nil {
		if err := s.httpSrv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("api shutdown: %w", err))
			s.httpSrv.Close()
		}
	} else if s.apiLn != nil {
		s.apiLn.Close()
	}
	if s.gcStop != nil {
		close(s.gcStop)
		<-s.gcDone
		s.gcStop = nil
	}
	if s.watch != nil {
		s.watch()
	}
	if s.store != nil {
		if err := s.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing store: %w", err))
		}
	}
	return errors.Join(errs...)
}

// floorHandler is the handler of Mochi's logger. It drops records below a
// level (Mochi logs every connection at info, which would drown tokenmq's
// own log) and the attributes in which Mochi logs whole packets: a packet
// can carry a password or a token.
type floorHandler struct {
	slog.Handler
	floor slog.Level
}

func (f floorHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.floor && f.Handler.Enabled(ctx, l)
}

// packetAttrs are the attribute keys under which Mochi logs packets.
var packetAttrs = map[string]bool{"pk": true, "packet": true, "will": true, "payload": true}

func (f floorHandler) Handle(ctx context.Context, r slog.Record) error {
	clean := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if !packetAttrs[a.Key] {
			clean.AddAttrs(a)
		}
		return true
	})
	return f.Handler.Handle(ctx, clean)
}

func (f floorHandler) WithAttrs(as []slog.Attr) slog.Handler {
	kept := make([]slog.Attr, 0, len(as))
	for _, a := range as {
		if !packetAttrs[a.Key] {
			kept = append(kept, a)
		}
	}
	return floorHandler{f.Handler.WithAttrs(kept), f.floor}
}

func (f floorHandler) WithGroup(name string) slog.Handler {
	return floorHandler{f.Handler.WithGroup(name), f.floor}
}

// statOf adapts the fields of a stats snapshot to metric functions: each
// scrape takes a fresh snapshot and reads one field.
func statOf[T any](snapshot func() T) func(field func(T) int64) func() float64 {
	return func(field func(T) int64) func() float64 {
		return func() float64 { return float64(field(snapshot())) }
	}
}
