package boltstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
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

// SPEC §4: a store with garbage in its data pages never takes the process
// down: each read either finds its record or fails with ErrStoreDamaged
// (never a panic), and so do writes and lists.
func TestDamagedPagesFailRequestsNotTheProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var ids []token.ID
	for i := range 400 {
		r := storetest.NewRecord(t, "inst-a", time.Duration(i)*time.Millisecond, time.Hour)
		if err := s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	s.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	page := os.Getpagesize()
	for p := 4; p*page < len(b); p += 3 { // every third data page, after the meta and root pages
		for i := p * page; i < (p+1)*page && i < len(b); i++ {
			b[i] = byte(i*131 + 7)
		}
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, time.Second)
	if err != nil {
		if !errors.Is(err, token.ErrStoreDamaged) && !strings.Contains(err.Error(), "open store") {
			t.Fatalf("open: %v", err)
		}
		return // refused at open with a clear error: fine
	}
	defer s.Close()
	found, damaged := 0, 0
	for _, id := range ids {
		_, err := s.Get(ctx, id)
		switch {
		case err == nil:
			found++
		case errors.Is(err, token.ErrStoreDamaged), errors.Is(err, token.ErrNotFound):
			damaged++
		default:
			t.Fatalf("Get: %v, want a record or ErrStoreDamaged", err)
		}
	}
	_, _ = s.List(ctx, "inst-a", nil, 100)
	_, _ = s.Revoke(ctx, ids[0], time.Now())
	_ = s.Create(ctx, storetest.NewRecord(t, "inst-a", time.Hour, time.Hour))
	t.Logf("%d records read, %d reads failed cleanly", found, damaged)
	if damaged == 0 {
		t.Fatal("the damage went unnoticed: the test damaged nothing")
	}
}
