// Package tokentest sets up a real token service for tests: a bbolt store
// and a keyring in a temporary directory, and a settable clock.
package tokentest

import (
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/internal/testkit"
	"github.com/tokenmq/tokenmq/token"
	"github.com/tokenmq/tokenmq/token/boltstore"
)

// Service is a token service over a fresh store.
type Service struct {
	*token.Service
	Store   *boltstore.Store
	Keyring *token.Keyring
	Clock   *testkit.Clock
	Dir     string // holds the store and keys.json
}

// NewService starts a token service in t's temporary directory, serving
// instances (default "inst-a", "inst-b"), on a clock that starts at start
// (the zero time: now, to the second), or on cfg.Now if set (then Clock
// is nil). cfg's Instances default here; the store closes in t.Cleanup.
func NewService(t testing.TB, start time.Time, cfg token.ServiceConfig) *Service {
	t.Helper()
	dir := t.TempDir()
	st, err := boltstore.Open(filepath.Join(dir, boltstore.FileName), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kr, err := token.LoadOrCreateKeyring(filepath.Join(dir, "keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	if start.IsZero() {
		start = time.Now().Truncate(time.Second)
	}
	clk := testkit.NewClock(start)
	if len(cfg.Instances) == 0 {
		cfg.Instances = []string{"inst-a", "inst-b"}
	}
	if cfg.Now == nil {
		cfg.Now = clk.Now
	} else {
		clk = nil // the caller's clock
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	svc, err := token.NewService(st, kr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &Service{Service: svc, Store: st, Keyring: kr, Clock: clk, Dir: dir}
}
