package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokenmq/tokenmq/api"
	"github.com/tokenmq/tokenmq/config"
	"github.com/tokenmq/tokenmq/token"
	"github.com/tokenmq/tokenmq/token/boltstore"
)

// File names under the data directory.
const (
	// KeyringFile holds the server keys that mint and verify tokens (mode 0600).
	KeyringFile = "keys.json"
)

// Options configure a Server.
type Options struct {
	// Config is the validated configuration, defaults set.
	Config config.Config
	// AccessKeys are the API's access keys (from the config, the environment
	// or the data dir).
	AccessKeys []api.AccessKey
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Server is one tokenmq process.
type Server struct {
	cfg  config.Config
	keys *api.Keys
	log  *slog.Logger

	startOnce sync.Once
	stopOnce  sync.Once
	stopErr   error
	ready     atomic.Bool

	store   *boltstore.Store
	svc     *token.Service
	httpSrv *http.Server
	apiLn   net.Listener
	gcStop  chan struct{}
	gcDone  chan struct{}
}

// New checks the options and returns a Server; it does no I/O.
func New(opts Options) (*Server, error) {
	cfg := opts.Config
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Role == config.RoleBroker {
		return nil, errors.New("role broker: the MQTT broker is not part of this build yet; run role tokens")
	}
	keys, err := api.NewKeys(opts.AccessKeys)
	if err != nil {
		return nil, err
	}
	if keys.Len() == 0 {
		return nil, errors.New("no access keys: the token API would accept no caller")
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Server{cfg: cfg, keys: keys, log: log}, nil
}

// Start opens the store and binds every listener; it returns once they are
// bound (or on the first failure, having released what it opened). It may
// be called once.
func (s *Server) Start(ctx context.Context) error {
	err := errors.New("server already started")
	s.startOnce.Do(func() { err = s.start(ctx) })
	return err
}

func (s *Server) start(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			s.release()
		}
	}()
	if err := os.MkdirAll(s.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	s.store, err = boltstore.Open(filepath.Join(s.cfg.DataDir, boltstore.FileName), 2*time.Second)
	if err != nil {
		return err
	}
	kr, err := token.LoadOrCreateKeyring(filepath.Join(s.cfg.DataDir, KeyringFile))
	if err != nil {
		return err
	}
	s.svc, err = token.NewService(s.store, kr, token.ServiceConfig{
		Instances: s.cfg.Tokens.Instances, MinTTL: s.cfg.Tokens.MinTTL, MaxTTL: s.cfg.Tokens.MaxTTL,
		GCGrace: s.cfg.Tokens.GCGrace, Logger: s.log,
	})
	if err != nil {
		return err
	}
	a := s.cfg.API
	h, err := api.NewHandler(api.Config{
		Service: s.svc, Keys: s.keys, TimestampWindow: a.TimestampWindow, NonceCapacity: a.NonceCapacity,
		MaxBodyBytes: a.MaxBodyBytes, Logger: s.log,
		RateLimits: api.RateLimits{
			ApplyToken: a.RateLimits.ApplyToken, QueryToken: a.RateLimits.QueryToken,
			BrokerQueryToken: a.RateLimits.BrokerQueryToken, Other: a.RateLimits.Other,
		},
	})
	if err != nil {
		return err
	}
	var lc net.ListenConfig
	s.apiLn, err = lc.Listen(ctx, "tcp", s.cfg.APIAddr)
	if err != nil {
		return fmt.Errorf("api listener: %w", err)
	}
	s.httpSrv = &http.Server{
		Handler:           s.mux(h),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
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
	s.gcStop, s.gcDone = make(chan struct{}), make(chan struct{})
	go s.collectLoop()
	s.ready.Store(true)
	s.log.Info("ready", "role", s.cfg.Role, "instances", s.cfg.Tokens.Instances, "data_dir", s.cfg.DataDir)
	return nil
}

func (s *Server) mux(rpc http.Handler) http.Handler {
	m := http.NewServeMux()
	m.Handle("/{$}", rpc)
	m.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeStatus(w, http.StatusOK, "ok")
	})
	m.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if s.ready.Load() {
			writeStatus(w, http.StatusOK, "ready")
		} else {
			writeStatus(w, http.StatusServiceUnavailable, "not ready")
		}
	})
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json;charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"Code":"NotFound","Message":"no such path; the token API is at /"}`)
	})
	return m
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

// APIAddr returns the bound address of the API listener (nil before Start).
func (s *Server) APIAddr() net.Addr {
	if s.apiLn == nil {
		return nil
	}
	return s.apiLn.Addr()
}

// Service returns the in-process token service (nil before Start).
func (s *Server) Service() *token.Service { return s.svc }

// Shutdown stops accepting, lets requests in flight finish until ctx ends,
// and closes the store (every committed write is already on disk). It is
// idempotent.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() {
		s.ready.Store(false)
		if s.httpSrv != nil {
			if err := s.httpSrv.Shutdown(ctx); err != nil {
				s.stopErr = fmt.Errorf("api shutdown: %w", err)
				s.httpSrv.Close()
			}
		}
		s.release()
		s.log.Info("stopped")
	})
	return s.stopErr
}

// release stops the GC loop and closes the store.
func (s *Server) release() {
	if s.gcStop != nil {
		close(s.gcStop)
		<-s.gcDone
		s.gcStop = nil
	}
	if s.apiLn != nil && s.httpSrv == nil {
		s.apiLn.Close()
	}
	if s.store != nil {
		if err := s.store.Close(); err != nil {
			s.log.Warn("closing store", "err", err)
		}
	}
}
