package boltstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tokenmq/tokenmq/token"
	"github.com/tokenmq/tokenmq/token/storetest"
)

func openTemp(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), FileName), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) token.Store { return openTemp(t) })
}

func TestReopenKeepsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	kept := storetest.NewRecord(t, "inst-a", 0, time.Hour)
	revoked := storetest.NewRecord(t, "inst-a", time.Second, time.Hour)
	for _, r := range []*token.Record{kept, revoked} {
		if err := s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Revoke(ctx, revoked.ID, revoked.CreateTime.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Check(); err != nil {
		t.Fatalf("Check after reopen: %v", err)
	}
	if got, err := s.Get(ctx, kept.ID); err != nil || got.Revoked {
		t.Fatalf("kept token after reopen: %+v, %v", got, err)
	}
	if got, err := s.Get(ctx, revoked.ID); err != nil || !got.Revoked {
		t.Fatalf("revoked token after reopen: %+v, %v", got, err)
	}
	// The revocation sequence continues; it never restarts at 1.
	next := storetest.NewRecord(t, "inst-a", 2*time.Second, time.Hour)
	if err := s.Create(ctx, next); err != nil {
		t.Fatal(err)
	}
	r, err := s.Revoke(ctx, next.ID, next.CreateTime)
	if err != nil || r.RevokeSeq != 2 {
		t.Fatalf("revocation after reopen: seq %d, %v; want 2", r.RevokeSeq, err)
	}
}

func TestFileModeAndLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", FileName)
	s, err := Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("store file mode %v, want 0600", fi.Mode().Perm())
	}
	// bbolt's lock is per open file description, so a second Open in this
	// process contends like a second process would.
	if _, err := Open(path, 50*time.Millisecond); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
}

func TestOpenRejectsForeignSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keySchema, []byte("99")) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(path, time.Second); err == nil {
		t.Fatal("Open accepted a store of schema 99")
	}
}
