package tokenauth

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/acl"
	"github.com/tokenmq/tokenmq/internal/testkit"
	"github.com/tokenmq/tokenmq/token"
)

// fakeValidator answers from a table and counts calls; it is the token
// service seen from the cache, with an outage switch.
type fakeValidator struct {
	mu      sync.Mutex
	grants  map[string]token.Grant
	down    bool
	calls   atomic.Int64
	release chan struct{} // if set, calls wait for it
}

func (f *fakeValidator) Validate(ctx context.Context, inst, tok string) (token.Grant, error) {
	f.calls.Add(1)
	if f.release != nil {
		<-f.release
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return token.Grant{}, errors.New("connection refused")
	}
	g, ok := f.grants[tok]
	if !ok {
		return token.Grant{}, token.ErrNotFound
	}
	return g, nil
}

func newTestCache(t *testing.T, v *fakeValidator) (*Cache, *testkit.Clock) {
	t.Helper()
	clk := testkit.NewClock(time.Unix(1_800_000_000, 0))
	c, err := NewCache(v, "inst", CacheConfig{Size: 100, PositiveTTL: time.Minute, NegativeTTL: 5 * time.Second, StaleGrace: 5 * time.Minute}, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	return c, clk
}

func grantFor(id byte, exp time.Time) token.Grant {
	return token.Grant{TokenID: token.ID{id}, InstanceID: "inst", Actions: token.ActionRead, Resources: []string{"a/#"}, ExpireTime: exp}
}

func TestCacheConcurrentMissesMakeOneCall(t *testing.T) {
	v := &fakeValidator{grants: map[string]token.Grant{}, release: make(chan struct{})}
	c, clk := newTestCache(t, v)
	v.grants["tok"] = grantFor(1, clk.Now().Add(time.Hour))
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g, err := c.Lookup(context.Background(), "tok")
			if err == nil && !g.acl.Match("a/b") {
				err = errors.New("grant without its ACL")
			}
			errs <- err
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for v.calls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	// Whenever the others arrive, they find the flight or its cached answer.
	close(v.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := v.calls.Load(); n != 1 {
		t.Fatalf("%d validation calls for 50 concurrent misses of one token, want 1", n)
	}
	if _, err := c.Lookup(context.Background(), "tok"); err != nil || v.calls.Load() != 1 {
		t.Fatalf("cached lookup: %v, calls %d", err, v.calls.Load())
	}
}

func TestCacheNeverOutlivesExpiry(t *testing.T) {
	v := &fakeValidator{grants: map[string]token.Grant{}}
	c, clk := newTestCache(t, v)
	v.grants["tok"] = grantFor(1, clk.Now().Add(10*time.Second))
	if _, err := c.Lookup(context.Background(), "tok"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(10 * time.Second)
	v.mu.Lock()
	v.down = true // not even stale grace may bring it back
	v.mu.Unlock()
	if _, err := c.Lookup(context.Background(), "tok"); err == nil {
		t.Fatal("an expired token was served from the cache")
	}
}

func TestCacheNegativeAnswersAreBrief(t *testing.T) {
	v := &fakeValidator{grants: map[string]token.Grant{}}
	c, clk := newTestCache(t, v)
	for range 3 {
		if _, err := c.Lookup(context.Background(), "unknown"); !token.IsDenied(err) {
			t.Fatalf("unknown token: %v", err)
		}
	}
	if v.calls.Load() != 1 {
		t.Fatalf("%d calls for a repeated unknown token, want 1", v.calls.Load())
	}
	v.grants["unknown"] = grantFor(2, clk.Now().Add(time.Hour))
	clk.Advance(6 * time.Second)
	if _, err := c.Lookup(context.Background(), "unknown"); err != nil {
		t.Fatalf("after the negative TTL the token is asked again: %v", err)
	}
}

func TestCacheStaleGraceDuringOutage(t *testing.T) {
	v := &fakeValidator{grants: map[string]token.Grant{}}
	c, clk := newTestCache(t, v)
	v.grants["tok"] = grantFor(1, clk.Now().Add(time.Hour))
	if _, err := c.Lookup(context.Background(), "tok"); err != nil {
		t.Fatal(err)
	}
	v.mu.Lock()
	v.down = true
	v.mu.Unlock()
	clk.Advance(time.Minute + 4*time.Minute) // stale, within the grace
	if _, err := c.Lookup(context.Background(), "tok"); err != nil {
		t.Fatalf("within stale grace: %v", err)
	}
	if _, err := c.Lookup(context.Background(), "never-seen"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("unknown token during outage: %v, want ErrUnavailable", err)
	}
	clk.Advance(2 * time.Minute) // past the grace
	if _, err := c.Lookup(context.Background(), "tok"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("past stale grace: %v, want ErrUnavailable", err)
	}
	if s := c.Stats(); s.StaleServed != 1 || s.Outages < 2 {
		t.Fatalf("stats %+v", s)
	}
}

func TestCacheRevocationWins(t *testing.T) {
	v := &fakeValidator{grants: map[string]token.Grant{}}
	c, clk := newTestCache(t, v)
	g := grantFor(1, clk.Now().Add(time.Hour))
	v.grants["tok"] = g
	if _, err := c.Lookup(context.Background(), "tok"); err != nil {
		t.Fatal(err)
	}
	c.MarkRevoked(g.TokenID, g.ExpireTime)
	if _, err := c.Lookup(context.Background(), "tok"); !errors.Is(err, token.ErrRevoked) {
		t.Fatalf("cached grant after revocation: %v", err)
	}
	// Even if the service (lagging) still says valid, the revocation stands.
	if _, err := c.Lookup(context.Background(), "tok"); !errors.Is(err, token.ErrRevoked) {
		t.Fatalf("fresh answer after revocation: %v", err)
	}
	clk.Advance(2 * time.Hour)
	c.Prune()
	if c.isRevoked(g.TokenID) {
		t.Fatal("revocation of an expired token kept forever")
	}
}

func TestCacheKeyIsNotTheToken(t *testing.T) {
	// The LRU is keyed by the token's SHA-256: no token string is stored.
	v := &fakeValidator{grants: map[string]token.Grant{}}
	c, clk := newTestCache(t, v)
	v.grants["secret-token"] = grantFor(1, clk.Now().Add(time.Hour))
	c.Lookup(context.Background(), "secret-token")
	for _, k := range c.lru.Keys() {
		if string(k[:]) == "secret-token" {
			t.Fatal("token used as cache key")
		}
	}
	if c.Len() != 1 {
		t.Fatalf("cache holds %d entries", c.Len())
	}
}

func TestCachePurgeExpired(t *testing.T) {
	v := &fakeValidator{grants: map[string]token.Grant{}}
	c, clk := newTestCache(t, v)
	v.grants["short"] = grantFor(1, clk.Now().Add(time.Minute))
	v.grants["long"] = grantFor(2, clk.Now().Add(time.Hour))
	for _, tok := range []string{"short", "long", "unknown"} {
		c.Lookup(context.Background(), tok)
	}
	if n := c.PurgeExpired(); n != 0 || c.Len() != 3 {
		t.Fatalf("nothing is dead yet: purged %d, %d left", n, c.Len())
	}
	clk.Advance(2 * time.Minute) // "short" expired, the denial's TTL passed
	if n := c.PurgeExpired(); n != 2 || c.Len() != 1 {
		t.Fatalf("purged %d, %d left; want 2 purged, 1 left", n, c.Len())
	}
	if _, err := c.Lookup(context.Background(), "long"); err != nil {
		t.Fatalf("the live entry: %v", err)
	}
}

// A caller whose context ends gives up on a slow call; the call goes on and
// its answer is cached for the next lookup.
func TestCacheCallerDeadlineLeavesTheCallRunning(t *testing.T) {
	v := &fakeValidator{grants: map[string]token.Grant{}, release: make(chan struct{})}
	c, clk := newTestCache(t, v)
	v.grants["tok"] = grantFor(1, clk.Now().Add(time.Hour))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Lookup(ctx, "tok"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("lookup past its deadline: %v, want ErrUnavailable", err)
	}
	close(v.release)
	testkit.WaitFor(t, 2*time.Second, "the call's answer in the cache", func() bool {
		_, ok := c.lru.Peek(keyOf("tok"))
		return ok
	})
	if g, err := c.Lookup(context.Background(), "tok"); err != nil || g == nil || v.calls.Load() != 1 {
		t.Fatalf("lookup after the call ended: %v, %d calls, want the cached answer and 1 call", err, v.calls.Load())
	}
}

// Tokens with the same resources share one compiled ACL; others do not,
// and a list is never confused with a re-split of it.
func TestCompiledACLsAreShared(t *testing.T) {
	exp := time.Now().Add(time.Hour)
	g1, err := newGrant(token.Grant{TokenID: token.ID{1}, Resources: []string{"a/+", "b/#"}, ExpireTime: exp})
	if err != nil {
		t.Fatal(err)
	}
	g2, _ := newGrant(token.Grant{TokenID: token.ID{2}, Resources: []string{"a/+", "b/#"}, ExpireTime: exp})
	g3, err := newGrant(token.Grant{TokenID: token.ID{3}, Resources: []string{"a/+", "/#"}, ExpireTime: exp})
	if err != nil {
		t.Fatal(err)
	}
	if g1.ACL() != g2.ACL() {
		t.Fatal("the same resources compiled twice")
	}
	if g3.ACL() == g1.ACL() || g3.ACL().Match("b/x") || !g1.ACL().Match("b/x") || !g3.ACL().Match("/x") {
		t.Fatal("different resources share an ACL")
	}
}

// A ${clientid} list is expanded per connection for every token that has
// it, the second compiled from the shared entry as much as the first.
func TestSharedTemplateStaysTemplated(t *testing.T) {
	exp := time.Now().Add(time.Hour)
	for i := range 2 {
		g, err := newGrant(token.Grant{TokenID: token.ID{byte(10 + i)}, Resources: []string{"shared/${clientid}/#"}, ExpireTime: exp})
		if err != nil {
			t.Fatal(err)
		}
		if a := g.ACLFor("dev-1"); a == nil || !a.Match("shared/dev-1/x") || a.Match("shared/dev-2/x") {
			t.Fatalf("token %d: ${clientid} not expanded for the connection", i+1)
		}
	}
}

// Two lists whose hashes collide never share an ACL: the entry under a
// list's hash is used only if it was compiled from that list.
func TestCompiledACLsCollision(t *testing.T) {
	wide, err := acl.Compile([]string{"#"})
	if err != nil {
		t.Fatal(err)
	}
	narrow := []string{"collide/a/+"}
	compiledACLs.Add(listHash(narrow), compiledACL{resources: []string{"#"}, acl: wide}) // another list, same hash
	e, err := compile(narrow)
	if err != nil {
		t.Fatal(err)
	}
	if a := e.acl; a == wide || a.Match("other/topic") || !a.Match("collide/a/b") {
		t.Fatal("a list got the ACL of another list with the same hash")
	}
	if again, _ := compile(narrow); again.acl != e.acl {
		t.Fatal("the list's own ACL was not kept")
	}
}
