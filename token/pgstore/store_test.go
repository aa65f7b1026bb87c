package pgstore

import (
	"context"
	"io/fs"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/token"
	"github.com/tokenmq/tokenmq/token/pgstore/pgtest"
	"github.com/tokenmq/tokenmq/token/storetest"
)

func freshSchema(t testing.TB) string { return pgtest.FreshSchema(t) }

func openFresh(t testing.TB) *Store {
	t.Helper()
	s, err := Open(context.Background(), freshSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) token.Store { return openFresh(t) })
}

// Two replicas on one database list what brokers reported to either.
func TestClientReportsAcrossReplicas(t *testing.T) {
	u := freshSchema(t)
	var stores []token.Store
	for range 2 {
		s, err := Open(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores = append(stores, s)
	}
	storetest.ClientReports(t, stores...)
}

// A second Open of a migrated database changes nothing; a database from a
// newer build is refused.
func TestMigrations(t *testing.T) {
	u := freshSchema(t)
	ctx := context.Background()
	for range 2 {
		s, err := Open(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		files, _ := fs.Glob(migrations, "migrations/*.sql")
		if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM tokenmq_migrations").Scan(&n); err != nil || n != len(files) || n < 2 {
			t.Fatalf("migrations recorded: %d, %v; want one per file (%d)", n, err, len(files))
		}
		s.Close()
	}
	s, _ := Open(ctx, u)
	s.pool.Exec(ctx, "INSERT INTO tokenmq_migrations (version) VALUES (99)")
	s.Close()
	if _, err := Open(ctx, u); err == nil {
		t.Fatal("opened a database of schema version 99")
	}
}

// Replicas starting together migrate once.
func TestConcurrentOpen(t *testing.T) {
	u := freshSchema(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			s, err := Open(context.Background(), u)
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// Watch wakes on a revocation committed through another connection pool
// (another replica).
func TestWatchAcrossReplicas(t *testing.T) {
	u := freshSchema(t)
	a, err := Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var woken atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.Watch(ctx, func() { woken.Add(1) })
	deadline := time.Now().Add(5 * time.Second)
	for woken.Load() == 0 && time.Now().Before(deadline) { // the first wake-up: listening
		time.Sleep(5 * time.Millisecond)
	}
	r := storetest.NewRecord(t, "inst", 0, time.Hour)
	if err := b.Create(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	before := woken.Load()
	if _, err := b.Revoke(context.Background(), r.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	for woken.Load() == before && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if woken.Load() == before {
		t.Fatal("a revocation on another replica did not wake Watch")
	}
}

func BenchmarkGet(b *testing.B) {
	s := openFresh(b)
	defer s.Close()
	r := storetest.NewRecord(b, "inst", 0, time.Hour)
	s.Create(context.Background(), r)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Get(context.Background(), r.ID); err != nil {
			b.Fatal(err)
		}
	}
}
