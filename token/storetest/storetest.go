// Package storetest is the conformance suite every token.Store must pass.
// Each store package runs it against its own implementation:
//
//	storetest.Run(t, func(t *testing.T) token.Store { ... })
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/token"
)

// Run runs the suite. open returns a new, empty store for each subtest; the
// suite closes it.
func Run(t *testing.T, open func(t *testing.T) token.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s token.Store)
	}{
		{"CreateGet", testCreateGet},
		{"Empty", testEmpty},
		{"GetUnknown", testGetUnknown},
		{"CreateDuplicateID", testCreateDuplicate},
		{"Revoke", testRevoke},
		{"RevokeUnknown", testRevokeUnknown},
		{"RevocationLogPaging", testRevocationPaging},
		{"KicksShareTheLog", testKicks},
		{"ListPagingAndIsolation", testList},
		{"Collect", testCollect},
		{"ConcurrentCreateRevoke", testConcurrent},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
}

// base is a fixed instant at millisecond precision, so records round-trip exactly.
var base = time.UnixMilli(1_800_000_000_000)

// NewRecord returns a valid, unrevoked record of instance inst created at
// base+created that expires ttl later.
func NewRecord(t testing.TB, inst string, created, ttl time.Duration) *token.Record {
	t.Helper()
	id, err := token.NewID()
	if err != nil {
		t.Fatal(err)
	}
	ct := base.Add(created)
	return &token.Record{
		ID: id, KeyID: 7, InstanceID: inst, AccessKeyID: "AK1", Name: "device-7",
		Actions: token.ActionReadWrite, Resources: []string{"a/+", "b/#", "c"},
		ExpireTime: ct.Add(ttl), CreateTime: ct, ModifyTime: ct,
	}
}

func mustCreate(t *testing.T, s token.Store, r *token.Record) {
	t.Helper()
	if err := s.Create(context.Background(), r); err != nil {
		t.Fatalf("Create: %v", err)
	}
}

func testCreateGet(t *testing.T, s token.Store) {
	r := NewRecord(t, "inst-a", 0, time.Hour)
	mustCreate(t, s, r)
	got, err := s.Get(context.Background(), r.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	assertSameRecord(t, got, r)

	bound := NewRecord(t, "inst-a", 0, time.Hour) // with a client binding
	bound.ClientIDs = []string{"GID_pump@@@*", "dev-1"}
	mustCreate(t, s, bound)
	if got, err = s.Get(context.Background(), bound.ID); err != nil {
		t.Fatalf("Get: %v", err)
	}
	assertSameRecord(t, got, bound)
}

func testEmpty(t *testing.T, s token.Store) {
	ctx := context.Background()
	if empty, err := s.Empty(ctx); err != nil || !empty {
		t.Fatalf("a new store: Empty = %v, %v", empty, err)
	}
	mustCreate(t, s, NewRecord(t, "inst-a", 0, time.Hour))
	if empty, err := s.Empty(ctx); err != nil || empty {
		t.Fatalf("a store with a record: Empty = %v, %v", empty, err)
	}
}

func assertSameRecord(t *testing.T, got, want *token.Record) {
	t.Helper()
	g, w := *got, *want
	for _, p := range []*token.Record{&g, &w} { // compare instants, not time.Time internals
		p.ExpireTime, p.CreateTime, p.ModifyTime, p.RevokeTime = p.ExpireTime.UTC(), p.CreateTime.UTC(), p.ModifyTime.UTC(), p.RevokeTime.UTC()
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("record round trip:\n got %+v\nwant %+v", g, w)
	}
}

func testGetUnknown(t *testing.T, s token.Store) {
	id, _ := token.NewID()
	if _, err := s.Get(context.Background(), id); !errors.Is(err, token.ErrNotFound) {
		t.Fatalf("Get(unknown) = %v, want ErrNotFound", err)
	}
}

func testCreateDuplicate(t *testing.T, s token.Store) {
	r := NewRecord(t, "inst-a", 0, time.Hour)
	mustCreate(t, s, r)
	r2 := *r
	r2.Name = "other"
	if err := s.Create(context.Background(), &r2); err == nil {
		t.Fatal("Create with an existing ID succeeded")
	}
	got, _ := s.Get(context.Background(), r.ID)
	if got.Name != r.Name {
		t.Fatalf("duplicate Create overwrote the record: name %q", got.Name)
	}
}

func testRevoke(t *testing.T, s token.Store) {
	ctx := context.Background()
	r := NewRecord(t, "inst-a", 0, time.Hour)
	mustCreate(t, s, r)
	at := base.Add(time.Minute)
	got, err := s.Revoke(ctx, r.ID, at)
	if err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if !got.Revoked || !got.RevokeTime.Equal(at) || !got.ModifyTime.Equal(at) || got.RevokeSeq == 0 {
		t.Fatalf("revoked record = %+v", got)
	}
	stored, _ := s.Get(ctx, r.ID)
	assertSameRecord(t, stored, got)

	again, err := s.Revoke(ctx, r.ID, at.Add(time.Minute))
	if err != nil {
		t.Fatalf("second Revoke: %v", err)
	}
	assertSameRecord(t, again, got)

	log, err := s.Revocations(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != 1 || log[0].ID != r.ID || log[0].Seq != got.RevokeSeq || log[0].InstanceID != "inst-a" ||
		!log[0].RevokeTime.Equal(at) || !log[0].ExpireTime.Equal(r.ExpireTime) {
		t.Fatalf("revocation log = %+v", log)
	}
}

func testRevokeUnknown(t *testing.T, s token.Store) {
	id, _ := token.NewID()
	if _, err := s.Revoke(context.Background(), id, base); !errors.Is(err, token.ErrNotFound) {
		t.Fatalf("Revoke(unknown) = %v, want ErrNotFound", err)
	}
	if log, _ := s.Revocations(context.Background(), 0, 10); len(log) != 0 {
		t.Fatalf("log after revoking nothing: %+v", log)
	}
}

func testRevocationPaging(t *testing.T, s token.Store) {
	ctx := context.Background()
	var ids []token.ID
	for i := range 7 {
		r := NewRecord(t, "inst-a", time.Duration(i)*time.Second, time.Hour)
		mustCreate(t, s, r)
		if _, err := s.Revoke(ctx, r.ID, base.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	if head, err := s.RevocationHead(ctx); err != nil || head != 7 {
		t.Fatalf("RevocationHead = %d, %v; want 7", head, err)
	}
	var seen []token.ID
	var after uint64
	for {
		page, err := s.Revocations(ctx, after, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, rv := range page {
			if rv.Seq <= after {
				t.Fatalf("seq %d not after %d", rv.Seq, after)
			}
			after = rv.Seq
			seen = append(seen, rv.ID)
		}
	}
	if !reflect.DeepEqual(seen, ids) {
		t.Fatalf("revocations in log order = %v, want %v", seen, ids)
	}
}

func testKicks(t *testing.T, s token.Store) {
	ctx := context.Background()
	r := NewRecord(t, "inst-a", 0, time.Hour)
	mustCreate(t, s, r)
	kick := token.Revocation{InstanceID: "inst-a", ClientID: "pump-7 ünïcode", RevokeTime: base.Add(time.Minute),
		ExpireTime: base.Add(time.Minute + token.KickRetention)}
	k1, err := s.Kick(ctx, kick)
	if err != nil {
		t.Fatalf("Kick: %v", err)
	}
	rec, err := s.Revoke(ctx, r.ID, base.Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Kick(ctx, token.Revocation{InstanceID: "inst-a"}); err == nil {
		t.Fatal("a kick without a client ID was logged")
	}
	log, err := s.Revocations(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != 2 || log[0].Seq != k1 || rec.RevokeSeq <= k1 || log[1].Seq != rec.RevokeSeq {
		t.Fatalf("log = %+v, kick seq %d, revocation seq %d", log, k1, rec.RevokeSeq)
	}
	got := log[0]
	if !got.IsKick() || got.ClientID != kick.ClientID || got.ID != (token.ID{}) || got.InstanceID != "inst-a" ||
		!got.RevokeTime.Equal(kick.RevokeTime) || !got.ExpireTime.Equal(kick.ExpireTime) {
		t.Fatalf("kick read back as %+v", got)
	}
	if log[1].IsKick() || log[1].ID != r.ID {
		t.Fatalf("revocation read back as %+v", log[1])
	}
	if head, _ := s.RevocationHead(ctx); head != rec.RevokeSeq {
		t.Fatalf("head %d, want %d", head, rec.RevokeSeq)
	}
	// A kick is collected once its retention ends, like a revocation.
	if _, err := s.Collect(ctx, kick.ExpireTime.Add(time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if log, _ := s.Revocations(ctx, 0, 10); len(log) != 0 {
		t.Fatalf("after Collect: %+v", log)
	}
}

func testList(t *testing.T, s token.Store) {
	ctx := context.Background()
	var want []token.ID
	for i := range 25 {
		r := NewRecord(t, "inst-a", time.Duration(i)*time.Second, time.Hour)
		mustCreate(t, s, r)
		want = append(want, r.ID)
		mustCreate(t, s, NewRecord(t, "inst-b", time.Duration(i)*time.Second, time.Hour))
		// A prefix of another instance's name must not leak into its list.
		mustCreate(t, s, NewRecord(t, "inst-a2", time.Duration(i)*time.Second, time.Hour))
	}
	var got []token.ID
	var after *token.ListPosition
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("List does not end")
		}
		page, err := s.List(ctx, "inst-a", after, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page {
			if r.InstanceID != "inst-a" {
				t.Fatalf("List(inst-a) returned a record of %q", r.InstanceID)
			}
			got = append(got, r.ID)
		}
		if len(page) < 10 {
			break
		}
		last := page[len(page)-1]
		after = &token.ListPosition{CreateTime: last.CreateTime, ID: last.ID}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("List order:\n got %v\nwant %v", got, want)
	}
	if page, _ := s.List(ctx, "inst-none", nil, 10); len(page) != 0 {
		t.Fatalf("List of an empty instance: %d records", len(page))
	}
}

func testCollect(t *testing.T, s token.Store) {
	ctx := context.Background()
	expired := NewRecord(t, "inst-a", 0, time.Minute)      // expires base+1m
	live := NewRecord(t, "inst-a", 0, time.Hour)           // expires base+1h
	revokedEarly := NewRecord(t, "inst-a", 0, 2*time.Hour) // revoked at base+2m
	revokedLate := NewRecord(t, "inst-a", 0, 3*time.Hour)  // revoked at base+50m
	for _, r := range []*token.Record{expired, live, revokedEarly, revokedLate} {
		mustCreate(t, s, r)
	}
	if _, err := s.Revoke(ctx, revokedEarly.ID, base.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Revoke(ctx, revokedLate.ID, base.Add(50*time.Minute)); err != nil {
		t.Fatal(err)
	}
	n, err := s.Collect(ctx, base.Add(10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("Collect deleted %d records, want 2", n)
	}
	for _, c := range []struct {
		r    *token.Record
		gone bool
	}{{expired, true}, {revokedEarly, true}, {live, false}, {revokedLate, false}} {
		_, err := s.Get(ctx, c.r.ID)
		if gone := errors.Is(err, token.ErrNotFound); gone != c.gone {
			t.Errorf("record %s: gone=%v, want %v (err %v)", c.r.Name, gone, c.gone, err)
		}
	}
	page, _ := s.List(ctx, "inst-a", nil, 10)
	if len(page) != 2 {
		t.Fatalf("List after Collect: %d records, want 2", len(page))
	}
	// The revocation log keeps entries until the token would have expired:
	// a follower that was away must still learn of revokedEarly.
	log, _ := s.Revocations(ctx, 0, 10)
	if len(log) != 2 {
		t.Fatalf("revocation log after first Collect: %d entries, want 2", len(log))
	}
	if _, err := s.Collect(ctx, base.Add(150*time.Minute)); err != nil {
		t.Fatal(err)
	}
	log, _ = s.Revocations(ctx, 0, 10)
	if len(log) != 1 || log[0].ID != revokedLate.ID {
		t.Fatalf("revocation log after second Collect = %+v, want only the token expiring at 3h", log)
	}
}

func testConcurrent(t *testing.T, s token.Store) {
	ctx := context.Background()
	const n = 64
	recs := make([]*token.Record, n)
	for i := range recs {
		recs[i] = NewRecord(t, "inst-a", time.Duration(i)*time.Millisecond, time.Hour)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for _, r := range recs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Create(ctx, r); err != nil {
				errs <- err
				return
			}
			if _, err := s.Revoke(ctx, r.ID, base.Add(time.Minute)); err != nil {
				errs <- fmt.Errorf("revoke: %w", err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seqs := map[uint64]bool{}
	for _, r := range recs {
		got, err := s.Get(ctx, r.ID)
		if err != nil || !got.Revoked {
			t.Fatalf("record after concurrent create+revoke: %+v, %v", got, err)
		}
		if seqs[got.RevokeSeq] {
			t.Fatalf("revocation seq %d used twice", got.RevokeSeq)
		}
		seqs[got.RevokeSeq] = true
	}
}

func testClosed(t *testing.T, s token.Store) {
	r := NewRecord(t, "inst-a", 0, time.Hour)
	mustCreate(t, s, r)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(context.Background(), r.ID); !errors.Is(err, token.ErrStoreClosed) {
		t.Fatalf("Get after Close = %v, want ErrStoreClosed", err)
	}
	if err := s.Create(context.Background(), NewRecord(t, "inst-a", 0, time.Hour)); !errors.Is(err, token.ErrStoreClosed) {
		t.Fatalf("Create after Close = %v, want ErrStoreClosed", err)
	}
}
