package token_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/internal/testkit"
	"github.com/tokenmq/tokenmq/internal/tokentest"
	"github.com/tokenmq/tokenmq/token"
	"github.com/tokenmq/tokenmq/token/boltstore"
)

func newService(t *testing.T) (*token.Service, *testkit.Clock) {
	t.Helper()
	ts := tokentest.NewService(t, time.UnixMilli(1_800_000_000_000), token.ServiceConfig{})
	return ts.Service, ts.Clock
}

func apply(t *testing.T, svc *token.Service, clk *testkit.Clock, inst string, ttl time.Duration, resources ...string) (string, *token.Record) {
	t.Helper()
	tok, rec, err := svc.Apply(context.Background(), token.ApplyRequest{
		InstanceID: inst, AccessKeyID: "AK1", Resources: resources, Actions: token.ActionReadWrite,
		ExpireTime: clk.Now().Add(ttl),
	})
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return tok, rec
}

func TestApplyQueryRevoke(t *testing.T) {
	svc, clk := newService(t)
	ctx := context.Background()
	tok, rec := apply(t, svc, clk, "inst-a", time.Hour, "b/#", "a/+", "b/#")
	if want := []string{"a/+", "b/#"}; !slices.Equal(rec.Resources, want) {
		t.Fatalf("resources %q, want sorted and de-duplicated %q", rec.Resources, want)
	}
	got, err := svc.Query(ctx, "inst-a", tok)
	if err != nil || got.ID != rec.ID || got.AccessKeyID != "AK1" {
		t.Fatalf("Query = %+v, %v", got, err)
	}
	if _, err := svc.Query(ctx, "inst-b", tok); !errors.Is(err, token.ErrWrongInstance) {
		t.Fatalf("Query on another instance = %v, want ErrWrongInstance", err)
	}
	if _, err := svc.Query(ctx, "inst-z", tok); !errors.Is(err, token.ErrInstanceNotServed) {
		t.Fatalf("Query on an unserved instance = %v, want ErrInstanceNotServed", err)
	}
	if _, err := svc.Revoke(ctx, "inst-a", tok); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Query(ctx, "inst-a", tok); !errors.Is(err, token.ErrRevoked) {
		t.Fatalf("Query after revoke = %v, want ErrRevoked", err)
	}
	again, err := svc.Revoke(ctx, "inst-a", tok)
	if err != nil || !again.Revoked {
		t.Fatalf("second Revoke = %+v, %v; want idempotent success", again, err)
	}
}

func TestQueryExpiry(t *testing.T) {
	svc, clk := newService(t)
	tok, _ := apply(t, svc, clk, "inst-a", time.Minute, "a")
	clk.Advance(time.Minute - time.Millisecond)
	if _, err := svc.Query(context.Background(), "inst-a", tok); err != nil {
		t.Fatalf("1 ms before expiry: %v", err)
	}
	clk.Advance(time.Millisecond)
	if _, err := svc.Query(context.Background(), "inst-a", tok); !errors.Is(err, token.ErrExpired) {
		t.Fatalf("at expiry: %v, want ErrExpired", err)
	}
}

func TestApplyExpireTimeRules(t *testing.T) {
	svc, clk := newService(t)
	ctx := context.Background()
	req := func(ttl time.Duration) token.ApplyRequest {
		return token.ApplyRequest{InstanceID: "inst-a", Resources: []string{"a"}, Actions: token.ActionRead, ExpireTime: clk.Now().Add(ttl)}
	}
	var pe *token.ParamError
	if _, _, err := svc.Apply(ctx, req(59*time.Second)); !errors.As(err, &pe) || pe.Param != "ExpireTime" {
		t.Fatalf("59 s ahead: %v, want ParamError ExpireTime", err)
	}
	if _, _, err := svc.Apply(ctx, req(59*time.Second+400*time.Millisecond)); !errors.As(err, &pe) {
		t.Fatalf("59.4 s ahead: %v, want ParamError ExpireTime", err)
	}
	// now+60s computed by a client arrives a little later than now: the
	// request still asked for 60 s, and is accepted (as is ApsaraMQ's own example).
	if _, rec, err := svc.Apply(ctx, req(59*time.Second+600*time.Millisecond)); err != nil || !rec.ExpireTime.Equal(clk.Now().Add(59600*time.Millisecond)) {
		t.Fatalf("59.6 s ahead (60 s sent 400 ms ago): %+v, %v", rec, err)
	}
	if _, rec, err := svc.Apply(ctx, req(60*time.Second)); err != nil || !rec.ExpireTime.Equal(clk.Now().Add(time.Minute)) {
		t.Fatalf("60 s ahead: %+v, %v", rec, err)
	}
	_, rec, err := svc.Apply(ctx, req(365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if want := clk.Now().Add(token.DefaultMaxTTL); !rec.ExpireTime.Equal(want) {
		t.Fatalf("a year ahead: expires %v, want capped to %v", rec.ExpireTime, want)
	}
}

func TestNormalizeResources(t *testing.T) {
	many := make([]string, 101)
	for i := range many {
		many[i] = fmt.Sprintf("t/%d", i)
	}
	for _, tc := range []struct {
		name    string
		in      []string
		want    []string
		wantErr string
	}{
		{"sorted and deduplicated", []string{"c", "a/#", "b/+/c", "a/#"}, []string{"a/#", "b/+/c", "c"}, ""},
		{"empty levels are MQTT-valid", []string{"/", "a//b", "/+"}, []string{"/", "/+", "a//b"}, ""},
		{"100 is the limit", many[:100], nil, ""},
		{"none", nil, nil, "no topic filter given"},
		{"101", many, nil, "101 topic filters given"},
		{"empty item", []string{"a", ""}, nil, `topic filter 2 ("") is empty`},
		{"hash not last", []string{"a/#/b"}, nil, "'#'"},
		{"hash inside level", []string{"a/b#"}, nil, "'#'"},
		{"plus inside level", []string{"a/b+"}, nil, "'+'"},
		{"NUL", []string{"a\x00b"}, nil, "NUL"},
		{"bad UTF-8", []string{"a/\xff"}, nil, "UTF-8"},
		{"too long", []string{strings.Repeat("a", 65536)}, nil, "65535"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := token.NormalizeResources(tc.in)
			if tc.wantErr != "" {
				var pe *token.ParamError
				if !errors.As(err, &pe) || pe.Param != "Resources" || !strings.Contains(pe.Msg, tc.wantErr) {
					t.Fatalf("err = %v, want Resources error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.want != nil && !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseActions(t *testing.T) {
	for in, want := range map[string]token.Actions{"R": token.ActionRead, "W": token.ActionWrite, "R,W": token.ActionReadWrite, "W,R": token.ActionReadWrite} {
		if got, err := token.ParseActions(in); err != nil || got != want {
			t.Errorf("ParseActions(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "RW", "r", "R,", ",R", "R,R", "R,W,R", "R, W", "X", "R;W"} {
		if _, err := token.ParseActions(in); err == nil {
			t.Errorf("ParseActions(%q) accepted", in)
		}
	}
}

func TestRevokeRejectsForeignStrings(t *testing.T) {
	svc, clk := newService(t)
	tok, _ := apply(t, svc, clk, "inst-a", time.Hour, "a")
	var pe *token.ParamError
	altered := tok[:40] + "x" + tok[41:]
	if tok[40] == 'x' {
		altered = tok[:40] + "y" + tok[41:]
	}
	for name, s := range map[string]string{"garbage": "not-a-token", "altered": altered} {
		if _, err := svc.Revoke(context.Background(), "inst-a", s); !errors.As(err, &pe) || pe.Param != "Token" {
			t.Errorf("%s: Revoke = %v, want ParamError Token", name, err)
		}
	}
	if _, err := svc.Revoke(context.Background(), "inst-b", tok); !errors.As(err, &pe) {
		t.Errorf("Revoke on another instance = %v, want ParamError", err)
	}
	if _, err := svc.Query(context.Background(), "inst-a", tok); err != nil {
		t.Fatalf("token was revoked by a rejected call: %v", err)
	}
}

func TestListPages(t *testing.T) {
	svc, clk := newService(t)
	ctx := context.Background()
	var want []token.ID
	for range 7 {
		_, rec := apply(t, svc, clk, "inst-a", time.Hour, "a")
		want = append(want, rec.ID)
		clk.Advance(time.Millisecond)
	}
	apply(t, svc, clk, "inst-b", time.Hour, "a")
	var got []token.ID
	cursor := ""
	for {
		page, next, err := svc.List(ctx, "inst-a", 3, cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page {
			got = append(got, r.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if !slices.Equal(got, want) {
		t.Fatalf("listed %v, want %v", got, want)
	}
	var pe *token.ParamError
	if _, _, err := svc.List(ctx, "inst-a", 3, "garbage!"); !errors.As(err, &pe) || pe.Param != "NextToken" {
		t.Fatalf("bad cursor: %v", err)
	}
	if _, _, err := svc.List(ctx, "inst-a", 101, ""); !errors.As(err, &pe) || pe.Param != "PageSize" {
		t.Fatalf("page size 101: %v", err)
	}
}

func TestCollectAfterGrace(t *testing.T) {
	svc, clk := newService(t)
	ctx := context.Background()
	tok, rec := apply(t, svc, clk, "inst-a", time.Minute, "a")
	clk.Advance(time.Minute + 23*time.Hour)
	if n, err := svc.Collect(ctx); err != nil || n != 0 {
		t.Fatalf("Collect inside the grace period: %d, %v", n, err)
	}
	if _, err := svc.Get(ctx, "inst-a", rec.ID); err != nil {
		t.Fatalf("record gone inside the grace period: %v", err)
	}
	clk.Advance(2 * time.Hour)
	if n, err := svc.Collect(ctx); err != nil || n != 1 {
		t.Fatalf("Collect after the grace period: %d, %v", n, err)
	}
	if _, err := svc.Get(ctx, "inst-a", rec.ID); !errors.Is(err, token.ErrNotFound) {
		t.Fatalf("record after collection: %v", err)
	}
	// A collected token stays invalid, and revoking it is still a success.
	if _, err := svc.Query(ctx, "inst-a", tok); !token.IsDenied(err) {
		t.Fatalf("Query of a collected token: %v", err)
	}
	if _, err := svc.Revoke(ctx, "inst-a", tok); err != nil {
		t.Fatalf("Revoke of a collected token: %v", err)
	}
}

func TestRevealGivesTheIssuedToken(t *testing.T) {
	svc, clk := newService(t)
	tok, rec := apply(t, svc, clk, "inst-a", time.Hour, "a")
	got, err := svc.Reveal(rec)
	if err != nil || got != tok {
		t.Fatalf("Reveal = %q, %v; want the issued token", got, err)
	}
}

// A copy of the store file alone must not let anyone connect: the file holds
// neither the token nor its MAC tag, and minting needs the key file.
func TestNoTokenAtRest(t *testing.T) {
	dir := t.TempDir()
	st, err := boltstore.Open(filepath.Join(dir, boltstore.FileName), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := token.LoadOrCreateKeyring(filepath.Join(dir, "keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := token.NewService(st, kr, token.ServiceConfig{Instances: []string{"inst-a"}})
	if err != nil {
		t.Fatal(err)
	}
	var toks []string
	for range 20 {
		tok, _, err := svc.Apply(context.Background(), token.ApplyRequest{
			InstanceID: "inst-a", Resources: []string{"a"}, Actions: token.ActionRead, ExpireTime: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok)
	}
	st.Close()
	file, err := os.ReadFile(filepath.Join(dir, boltstore.FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range toks {
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil {
			t.Fatal(err)
		}
		tag := raw[len(raw)-32:]
		if bytes.Contains(file, []byte(tok)) || bytes.Contains(file, tag[:8]) {
			t.Fatal("the store file contains a token or its MAC tag")
		}
	}
	// A second service over a copy of the store but a different key file
	// (what a thief of the store alone has) accepts none of the tokens.
	stolen, err := boltstore.Open(filepath.Join(dir, boltstore.FileName), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer stolen.Close()
	otherKeys, _ := token.LoadOrCreateKeyring(filepath.Join(t.TempDir(), "keys.json"))
	thief, _ := token.NewService(stolen, otherKeys, token.ServiceConfig{Instances: []string{"inst-a"}})
	for _, tok := range toks {
		if _, err := thief.Query(context.Background(), "inst-a", tok); !errors.Is(err, token.ErrForged) {
			t.Fatalf("token accepted without the key file: %v", err)
		}
	}
}

// countingStore counts the lookups that reach the store.
type countingStore struct {
	token.Store
	gets atomic.Int64
}

func (c *countingStore) Get(ctx context.Context, id token.ID) (*token.Record, error) {
	c.gets.Add(1)
	return c.Store.Get(ctx, id)
}

// Forged, altered, malformed and expired tokens are refused before the store.
func TestRejectedWithoutStoreLookup(t *testing.T) {
	dir := t.TempDir()
	st, err := boltstore.Open(filepath.Join(dir, boltstore.FileName), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cs := &countingStore{Store: st}
	kr, _ := token.LoadOrCreateKeyring(filepath.Join(dir, "keys.json"))
	clk := testkit.NewClock(time.UnixMilli(1_800_000_000_000))
	svc, _ := token.NewService(cs, kr, token.ServiceConfig{Instances: []string{"inst-a"}, Now: clk.Now})
	tok, _ := apply(t, svc, clk, "inst-a", time.Minute, "a")
	other, _ := token.LoadOrCreateKeyring(filepath.Join(t.TempDir(), "keys.json"))
	id, _ := token.NewID()
	for name, s := range map[string]string{
		"altered":          tok[:len(tok)-2] + "AA",
		"other server key": other.Mint(id, clk.Now().Add(time.Hour)),
		"malformed":        "R|W|hello",
		"empty":            "",
	} {
		if _, err := svc.Query(context.Background(), "inst-a", s); !token.IsDenied(err) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	clk.Advance(time.Minute)
	if _, err := svc.Query(context.Background(), "inst-a", tok); !errors.Is(err, token.ErrExpired) {
		t.Fatalf("expired: %v", err)
	}
	if n := cs.gets.Load(); n != 0 {
		t.Fatalf("%d store lookups for tokens that should die before the store", n)
	}
}

func TestFeed(t *testing.T) {
	svc, clk := newService(t)
	ctx := context.Background()
	tokA, recA := apply(t, svc, clk, "inst-a", time.Hour, "a")
	tokB, _ := apply(t, svc, clk, "inst-b", time.Hour, "b")

	page, err := svc.Feed(ctx, "inst-a", 0, 0)
	if err != nil || len(page.Revocations) != 0 || page.Next != 0 {
		t.Fatalf("empty feed: %+v, %v", page, err)
	}

	// A waiting follower is woken by a revocation, well before its timeout.
	got := make(chan feedResult, 1)
	go func() {
		p, err := svc.Feed(ctx, "inst-a", 0, time.Minute)
		got <- feedResult{p, err}
	}()
	testkit.WaitFor(t, 5*time.Second, "the feed's long poll", func() bool { return svc.Waiters() > 0 })
	if _, err := svc.Revoke(ctx, "inst-a", tokA); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if r.err != nil || len(r.page.Revocations) != 1 || r.page.Revocations[0].ID != recA.ID || r.page.Next != 1 {
			t.Fatalf("woken feed: %+v, %v", r.page, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a revocation did not wake the waiting feed")
	}

	// Another instance's revocation advances Next but is not returned.
	if _, err := svc.Revoke(ctx, "inst-b", tokB); err != nil {
		t.Fatal(err)
	}
	page, _ = svc.Feed(ctx, "inst-a", 1, 0)
	if len(page.Revocations) != 0 || page.Next != 2 {
		t.Fatalf("feed after another instance's revocation: %+v", page)
	}

	// Nothing new: a short wait returns an empty page at the same position.
	page, err = svc.Feed(ctx, "inst-a", 2, 20*time.Millisecond)
	if err != nil || len(page.Revocations) != 0 || page.Next != 2 || page.Reset {
		t.Fatalf("timed-out feed: %+v, %v", page, err)
	}

	// A position beyond the log's head means the log restarted.
	page, _ = svc.Feed(ctx, "inst-a", 99, 0)
	if !page.Reset || page.Next != 2 || len(page.Revocations) != 1 {
		t.Fatalf("feed from beyond the head: %+v", page)
	}
}

type feedResult struct {
	page token.FeedPage
	err  error
}
