package tokenmqtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/api"
	"github.com/tokenmq/tokenmq/broker"
	"github.com/tokenmq/tokenmq/config"
	"github.com/tokenmq/tokenmq/tokenauth"
)

// AccessKeyID is the ID of the admin key every Server is started with; its
// secret is random per Server (Server.AccessKeySecret).
const AccessKeyID = "LTAItokenmqtest"

// Server is a tokenmq (token service and broker in one) running in this
// process on 127.0.0.1, with a temporary data dir and a fresh key.
type Server struct {
	// MQTT is the host:port of MQTT over TCP.
	MQTT string
	// WebSocket is the URL of MQTT over WebSocket (ws://host:port/mqtt).
	WebSocket string
	// Endpoint is the token API's URL: the Alibaba SDK's Domain is its
	// host:port, with scheme http.
	Endpoint string
	// InstanceID is the instance it serves (default "mqtt-local").
	InstanceID string
	// AccessKeyID and AccessKeySecret are an admin key of the token API.
	AccessKeyID, AccessKeySecret string
	// Dir is the data dir; Close removes it.
	Dir string

	srv   *broker.Server
	clock *Clock
	api   *api.Client

	mu      sync.Mutex
	events  []tokenauth.Event
	changed chan struct{} // closed and replaced on every event

	closeOnce sync.Once
	closeErr  error
}

type options struct {
	clock  *Clock
	minTTL time.Duration
	logger *slog.Logger
	edit   []func(*config.Config)
}

// Option configures a Server.
type Option func(*options)

// WithClock runs the Server on a clock the test moves (Server.Advance),
// starting at the system's time, and lowers the shortest token lifetime
// ApplyToken accepts from 60 s to 1 ms. A production configuration cannot
// do either.
func WithClock() Option {
	return func(o *options) {
		o.clock = NewClock(time.Now().Truncate(time.Millisecond))
		o.minTTL = time.Millisecond
	}
}

// WithInstanceID serves instance id instead of "mqtt-local".
func WithInstanceID(id string) Option {
	return WithConfig(func(c *config.Config) { c.InstanceID = id })
}

// WithExpireNotice sends $SYS/tokenExpireNotice d before a token expires
// (default 5 minutes, as in production).
func WithExpireNotice(d time.Duration) Option {
	return WithConfig(func(c *config.Config) { c.Broker.ExpireNotice = d })
}

// WithLogger sends the server's logs to l (default: discarded).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithConfig changes any part of the configuration (tokenmq serve's, see
// configs/tokenmq.yaml) before start. Listeners and the data dir are the
// Server's own.
func WithConfig(edit func(*config.Config)) Option {
	return func(o *options) { o.edit = append(o.edit, edit) }
}

// Start starts a Server for the test and stops it, removing its data, in
// t.Cleanup. It fails the test if the server cannot start.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s, err := New(opts...)
	if err != nil {
		t.Fatalf("tokenmqtest: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("tokenmqtest: %v", err)
		}
	})
	return s
}

// New starts a Server; Close stops it. Start is New for a test.
func New(opts ...Option) (*Server, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	dir, err := os.MkdirTemp("", "tokenmqtest-")
	if err != nil {
		return nil, err
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	s := &Server{AccessKeyID: AccessKeyID, AccessKeySecret: hex.EncodeToString(b[:]), Dir: dir, clock: o.clock,
		changed: make(chan struct{})}

	cfg := config.Default()
	cfg.DataDir = dir
	cfg.API.RateLimits = config.RateLimits{} // tests call as fast as they like
	for _, edit := range o.edit {
		edit(&cfg)
	}
	cfg.Role, cfg.DataDir = config.RoleAll, dir
	cfg.APIAddr, cfg.MQTTAddr, cfg.WSAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	if cfg.TLSAddr != "" {
		cfg.TLSAddr = "127.0.0.1:0"
	}
	if o.minTTL > 0 {
		cfg.Tokens.MinTTL = o.minTTL
	}
	cfg.SetDefaults()
	logger := o.logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	bo := broker.Options{Config: cfg, Logger: logger, Events: s.record,
		AccessKeys: []api.AccessKey{{ID: s.AccessKeyID, Secret: s.AccessKeySecret, Role: api.RoleAdmin}}}
	if o.clock != nil {
		bo.Clock = o.clock
	}
	srv, err := broker.New(bo)
	if err == nil {
		err = srv.Start(context.Background())
	}
	if err != nil {
		if srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = srv.Shutdown(ctx)
			cancel()
		}
		os.RemoveAll(dir)
		return nil, err
	}
	s.srv, s.InstanceID = srv, cfg.InstanceID
	s.MQTT = srv.MQTTAddr("tcp")
	s.WebSocket = "ws://" + srv.MQTTAddr("ws") + "/mqtt"
	s.Endpoint = "http://" + srv.APIAddr().String()
	s.api = &api.Client{Endpoint: s.Endpoint, AccessKeyID: s.AccessKeyID, AccessKeySecret: s.AccessKeySecret}
	return s, nil
}

// Close disconnects the clients, stops the server and removes its data
// dir. It is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.closeErr = s.srv.Shutdown(ctx)
		if err := os.RemoveAll(s.Dir); err != nil && s.closeErr == nil {
			s.closeErr = err
		}
	})
	return s.closeErr
}

// API returns a client of the token API signed with the Server's admin key.
func (s *Server) API() *api.Client { return s.api }

// Broker returns the running server, for what this package does not wrap.
func (s *Server) Broker() *broker.Server { return s.srv }

// Now is the time tokens expire by: the test's clock (WithClock) or the
// system's.
func (s *Server) Now() time.Time {
	if s.clock != nil {
		return s.clock.Now()
	}
	return time.Now()
}

// Apply issues a token for the Server's instance, valid for ttl from Now:
// actions "R", "W" or "R,W", resources MQTT topic filters.
func (s *Server) Apply(ttl time.Duration, actions string, resources ...string) (string, error) {
	r, err := s.api.ApplyToken(context.Background(), api.ApplyTokenRequest{InstanceID: s.InstanceID,
		Resources: resources, Actions: actions, ExpireTime: s.Now().Add(ttl)})
	if err != nil {
		return "", err
	}
	return r.Token, nil
}

// MustApply is Apply that fails the test on error.
func (s *Server) MustApply(t testing.TB, ttl time.Duration, actions string, resources ...string) string {
	t.Helper()
	tok, err := s.Apply(ttl, actions, resources...)
	if err != nil {
		t.Fatalf("tokenmqtest: ApplyToken: %v", err)
	}
	return tok
}

// Revoke revokes a token: its clients are disconnected within a second.
func (s *Server) Revoke(tok string) error {
	_, err := s.api.RevokeToken(context.Background(), s.InstanceID, tok)
	return err
}

// Kick disconnects a client ID (KickClient) and discards its session.
func (s *Server) Kick(clientID string) error {
	_, err := s.api.KickClient(context.Background(), s.InstanceID, clientID)
	return err
}

// Username is the ApsaraMQ-form CONNECT username for this Server's admin
// key: Token|AccessKeyID|InstanceID (the password is then "RW|<token>", or
// "R|<t1>|W|<t2>"). A bare token as the password works with any username.
func (s *Server) Username() string {
	return strings.Join([]string{"Token", s.AccessKeyID, s.InstanceID}, "|")
}

// ErrNoClock is what Advance panics with on a Server without WithClock.
var ErrNoClock = errors.New("tokenmqtest: Advance needs a Server started WithClock()")

// Advance moves the Server's clock forward by d: tokens that expire on the
// way send their notices and disconnect their clients, in order, and
// offline sessions whose expiry interval passed are discarded. It returns
// when that is done (a disconnect's packet is then on its way).
func (s *Server) Advance(d time.Duration) {
	if s.clock == nil {
		panic(ErrNoClock)
	}
	s.clock.Advance(d)
	s.srv.ExpireSessions()
}

// SessionOffline reports whether the broker keeps clientID's session with
// its client disconnected: once it does, the session's expiry interval
// runs (from the system's time of the disconnect) and Advance can end it.
func (s *Server) SessionOffline(clientID string) bool { return s.srv.SessionOffline(clientID) }

func (s *Server) record(e tokenauth.Event) {
	s.mu.Lock()
	s.events = append(s.events, e)
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// Events returns what the broker decided so far, in order: connects
// accepted and refused (with the reason and code), renewals, disconnects
// for an expired or revoked token, an invalid renewal or a kick.
func (s *Server) Events() []tokenauth.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]tokenauth.Event(nil), s.events...)
}

// WaitEvent returns the first event, past or future, that match accepts,
// or an error after timeout.
func (s *Server) WaitEvent(timeout time.Duration, match func(tokenauth.Event) bool) (tokenauth.Event, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	seen := 0
	for {
		s.mu.Lock()
		evs, changed := s.events[seen:], s.changed
		seen = len(s.events)
		s.mu.Unlock()
		for _, e := range evs {
			if match(e) {
				return e, nil
			}
		}
		select {
		case <-changed:
		case <-deadline.C:
			return tokenauth.Event{}, fmt.Errorf("tokenmqtest: no such event within %v (%d events: %s)", timeout, len(s.Events()), summary(s.Events()))
		}
	}
}

func summary(evs []tokenauth.Event) string {
	var parts []string
	for _, e := range evs {
		parts = append(parts, e.Kind+" "+e.ClientID+" "+e.Result+" "+e.Reason)
	}
	return strings.Join(parts, "; ")
}
