package tokenauth

import (
	"context"
	"crypto/sha256"
	"fmt"
	"hash/maphash"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/tokenmq/tokenmq/acl"
	"github.com/tokenmq/tokenmq/internal/deadline"
	"github.com/tokenmq/tokenmq/token"
)

// Validator answers whether a token is valid for an instance. A denial is
// an error for which token.IsDenied is true; any other error is an outage.
// The in-process token.Service and the HTTP api.Client both implement it.
type Validator interface {
	Validate(ctx context.Context, instanceID, tok string) (token.Grant, error)
}

// CacheConfig sizes the validation cache (SPEC §3.3). It is also the
// broker.cache section of the configuration file.
type CacheConfig struct {
	// Size is the most tokens cached. Default 100000.
	Size int `yaml:"size"`
	// PositiveTTL is how long a valid answer is trusted before asking again;
	// never past the token's expiry. Default 1m.
	PositiveTTL time.Duration `yaml:"positive_ttl"`
	// NegativeTTL is how long a "not valid" answer is remembered. Default 5s.
	NegativeTTL time.Duration `yaml:"negative_ttl"`
	// StaleGrace is how long past PositiveTTL a valid answer still admits a
	// client while the token service cannot be reached; negative turns it
	// off. Default 5m.
	StaleGrace time.Duration `yaml:"stale_grace"`
	// QueryTimeout bounds one validation call (QueryToken). Default 3s.
	QueryTimeout time.Duration `yaml:"query_timeout"`
}

// DefaultCacheConfig returns the cache configuration with every default set.
func DefaultCacheConfig() CacheConfig {
	var c CacheConfig
	c.setDefaults()
	return c
}

func (c *CacheConfig) setDefaults() {
	if c.Size <= 0 {
		c.Size = 100_000
	}
	if c.PositiveTTL <= 0 {
		c.PositiveTTL = time.Minute
	}
	if c.NegativeTTL <= 0 {
		c.NegativeTTL = 5 * time.Second
	}
	if c.StaleGrace < 0 {
		c.StaleGrace = 0
	} else if c.StaleGrace == 0 {
		c.StaleGrace = 5 * time.Minute
	}
	if c.QueryTimeout <= 0 {
		c.QueryTimeout = 3 * time.Second
	}
}

// Grant is a valid token's grant with its resources compiled, once per
// cached answer.
type Grant struct {
	token.Grant
	acl       *acl.ACL
	templated bool // a resource has a ${clientid} level: compiled per connection
}

// newGrant compiles a valid token's resources. An invalid resource is an
// error: the service handed out what it should have refused.
func newGrant(g token.Grant) (*Grant, error) {
	compiled, err := compile(g.Resources)
	if err != nil {
		return nil, fmt.Errorf("%w: token %s has an invalid resource: %v", ErrUnavailable, g.TokenID, err)
	}
	return &Grant{Grant: g, acl: compiled.acl, templated: compiled.templated}, nil
}

// compiledACLs shares compiled resource lists between tokens: a fleet's
// tokens are often issued with the same resources (or the same
// ${clientid} template), and compiling is most of a new token's first
// CONNECT. A compiled ACL is immutable. Keyed by a seeded hash of the list
// (listHash), and an entry is used only if its list is the one asked for:
// two lists that hash alike never share an ACL.
var compiledACLs, _ = lru.New[uint64, compiledACL](1024)

type compiledACL struct {
	resources []string
	acl       *acl.ACL
	templated bool // a resource has a ${clientid} level
}

var listSeed = maphash.MakeSeed()

// listHash hashes a resource list: each entry's seeded maphash, mixed in
// order. Not SHA-256: a hit is checked against the list anyway, and
// SHA-256 with a write per entry was a third of a 100-resource token's
// first CONNECT.
func listHash(resources []string) uint64 {
	h := uint64(len(resources))
	for _, r := range resources {
		h = (bits.RotateLeft64(h, 23) ^ maphash.String(listSeed, r)) * 0x9e3779b97f4a7c15
	}
	return h
}

// compile returns resources compiled, from compiledACLs if it has them.
func compile(resources []string) (compiledACL, error) {
	key := listHash(resources)
	if e, ok := compiledACLs.Get(key); ok && slices.Equal(e.resources, resources) {
		return e, nil
	}
	a, err := acl.Compile(resources)
	if err != nil {
		return compiledACL{}, err
	}
	e := compiledACL{resources: slices.Clone(resources), acl: a}
	for _, r := range resources {
		e.templated = e.templated || hasPlaceholder(r)
	}
	compiledACLs.Add(key, e)
	return e, nil
}

// ACL returns the token's resources, compiled as they are (a ${clientid}
// level taken literally).
func (g *Grant) ACL() *acl.ACL { return g.acl }

// ACLFor returns the token's resources for a connection of client clientID:
// ${clientid} levels expanded (ExpandResources). Tokens without the
// placeholder share one compiled ACL.
func (g *Grant) ACLFor(clientID string) *acl.ACL {
	if !g.templated {
		return g.acl
	}
	e, err := compile(ExpandResources(g.Resources, clientID))
	if err != nil { // ExpandResources keeps only valid filters; fail closed anyway
		return nil
	}
	return e.acl
}

// cacheKey is the SHA-256 of a token: the cache never holds tokens.
type cacheKey [sha256.Size]byte

type cacheEntry struct {
	g       *Grant // nil for a denial
	err     error  // the denial
	fetched time.Time
	fresh   time.Time // trusted without asking until then
}

type flight struct {
	done chan struct{}
	e    *cacheEntry
	err  error // outage
}

// CacheStats counts what the cache did.
type CacheStats struct {
	Hits, Misses, Calls, StaleServed, Outages, Evictions int64
}

// Cache validates tokens through a Validator, remembering answers in a
// size-bounded LRU keyed by the tokens' hashes. Concurrent misses for one
// token make one call. It is safe for concurrent use.
type Cache struct {
	v        Validator
	instance string
	cfg      CacheConfig
	now      func() time.Time
	lru      *lru.Cache[cacheKey, *cacheEntry]

	mu      sync.Mutex
	flights map[cacheKey]*flight

	revMu   sync.RWMutex
	revoked map[token.ID]time.Time // revoked token -> its expiry (forget after)

	hits, misses, calls, stale, outages, evictions atomic.Int64

	observe func(outcome string, d time.Duration) // each validation call, for metrics
}

// NewCache returns a Cache for one instance.
func NewCache(v Validator, instanceID string, cfg CacheConfig, now func() time.Time) (*Cache, error) {
	cfg.setDefaults()
	if now == nil {
		now = time.Now
	}
	c := &Cache{v: v, instance: instanceID, cfg: cfg, now: now, observe: func(string, time.Duration) {},
		flights: make(map[cacheKey]*flight), revoked: make(map[token.ID]time.Time)}
	l, err := lru.NewWithEvict[cacheKey, *cacheEntry](cfg.Size, func(cacheKey, *cacheEntry) { c.evictions.Add(1) })
	if err != nil {
		return nil, err
	}
	c.lru = l
	return c, nil
}

// Stats returns the counters so far.
func (c *Cache) Stats() CacheStats {
	return CacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Calls: c.calls.Load(),
		StaleServed: c.stale.Load(), Outages: c.outages.Load(), Evictions: c.evictions.Load()}
}

// Len returns the number of cached answers.
func (c *Cache) Len() int { return c.lru.Len() }

// keyOf hashes a token without allocating (tokens are at most 128 bytes;
// longer strings are hashed the slow way).
func keyOf(tok string) cacheKey {
	var buf [MaxTokenLength]byte
	if len(tok) <= len(buf) {
		n := copy(buf[:], tok)
		return sha256.Sum256(buf[:n])
	}
	return sha256.Sum256([]byte(tok))
}

// Lookup returns the grant of a valid token, a denial (token.IsDenied), or
// an error wrapping ErrUnavailable when no answer can be had. It never
// returns a grant past the token's expiry or after its revocation. Every
// call to the validator is bounded by QueryTimeout; ctx can only cut short
// the wait for a call another caller started.
func (c *Cache) Lookup(ctx context.Context, tok string) (*Grant, error) {
	k := keyOf(tok)
	now := c.now()
	cached, _ := c.lru.Get(k)
	if cached != nil && now.Before(cached.fresh) {
		if cached.g == nil {
			c.hits.Add(1)
			return nil, cached.err
		}
		if err := c.usable(cached.g, now); err != nil {
			c.lru.Remove(k)
			return nil, err
		}
		c.hits.Add(1)
		return cached.g, nil
	}
	c.misses.Add(1)
	e, err := c.fetch(ctx, k, tok)
	now = c.now()
	if err != nil {
		c.outages.Add(1)
		// The service cannot answer: a recent enough valid answer stands in.
		if cached != nil && cached.g != nil && now.Sub(cached.fetched) <= c.cfg.PositiveTTL+c.cfg.StaleGrace &&
			c.usable(cached.g, now) == nil {
			c.stale.Add(1)
			return cached.g, nil
		}
		return nil, err
	}
	if e.g == nil {
		return nil, e.err
	}
	if err := c.usable(e.g, now); err != nil {
		c.lru.Remove(k)
		return nil, err
	}
	return e.g, nil
}

// usable checks a cached grant against the clock and the revocations heard.
func (c *Cache) usable(g *Grant, now time.Time) error {
	if !now.Before(g.ExpireTime) {
		return token.ErrExpired
	}
	if c.isRevoked(g.TokenID) {
		return token.ErrRevoked
	}
	return nil
}

// fetch asks the validator, once for all concurrent callers of one token.
func (c *Cache) fetch(ctx context.Context, k cacheKey, tok string) (*cacheEntry, error) {
	c.mu.Lock()
	if f := c.flights[k]; f != nil {
		c.mu.Unlock()
		select {
		case <-f.done:
			return f.e, f.err
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
		}
	}
	// A flight that ended between our cache miss and now has left its answer
	// in the cache (Add comes before the flight is removed): use it.
	if e, ok := c.lru.Peek(k); ok && c.now().Before(e.fresh) {
		c.mu.Unlock()
		return e, nil
	}
	f := &flight{done: make(chan struct{})}
	c.flights[k] = f
	c.mu.Unlock()

	run := func() {
		f.e, f.err = c.call(tok)
		if f.err == nil {
			c.lru.Add(k, f.e)
		}
		c.mu.Lock()
		delete(c.flights, k)
		c.mu.Unlock()
		close(f.done)
	}
	if ctx.Done() == nil { // no deadline of the caller's own: make the call here
		run()
		return f.e, f.err
	}
	// The caller may give up before the call's own timeout: the call goes
	// on (others may join it, and its answer fills the cache).
	go run()
	select {
	case <-f.done:
		return f.e, f.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
	}
}

// call makes one validation call, bounded by QueryTimeout and independent
// of any one caller's context (others may be waiting on it).
func (c *Cache) call(tok string) (*cacheEntry, error) {
	c.calls.Add(1)
	ctx := deadline.WithTimeout(context.Background(), c.cfg.QueryTimeout) // no timer for a store that does not wait
	defer ctx.Release()
	start := time.Now()
	g, err := c.v.Validate(ctx, c.instance, tok)
	took := time.Since(start)
	now := c.now()
	if token.IsDenied(err) {
		c.observe("denied", took)
		return &cacheEntry{err: err, fetched: now, fresh: now.Add(c.cfg.NegativeTTL)}, nil
	}
	if err != nil {
		c.observe("error", took)
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	c.observe("valid", took)
	compiled, err := newGrant(g)
	if err != nil {
		return nil, err
	}
	fresh := now.Add(c.cfg.PositiveTTL)
	if g.ExpireTime.Before(fresh) {
		fresh = g.ExpireTime
	}
	return &cacheEntry{g: compiled, fetched: now, fresh: fresh}, nil
}

// MarkRevoked records a revocation heard from the feed: the token is refused
// from now on, whatever the cache holds or a call in flight returns.
func (c *Cache) MarkRevoked(id token.ID, expire time.Time) {
	c.revMu.Lock()
	c.revoked[id] = expire
	c.revMu.Unlock()
}

func (c *Cache) isRevoked(id token.ID) bool {
	c.revMu.RLock()
	_, ok := c.revoked[id]
	c.revMu.RUnlock()
	return ok
}

// Prune forgets revocations of tokens that have expired anyway.
func (c *Cache) Prune() {
	now := c.now()
	c.revMu.Lock()
	for id, exp := range c.revoked {
		if !now.Before(exp) {
			delete(c.revoked, id)
		}
	}
	c.revMu.Unlock()
}

// PurgeExpired drops answers that can no longer be used: grants past their
// token's expiry or stale grace, denials past their TTL. The LRU bounds the
// cache's size; this keeps it from holding the dead until evicted.
func (c *Cache) PurgeExpired() int {
	now := c.now()
	n := 0
	for _, k := range c.lru.Keys() {
		e, ok := c.lru.Peek(k)
		if !ok {
			continue
		}
		dead := e.g == nil && !now.Before(e.fresh) ||
			e.g != nil && (!now.Before(e.g.ExpireTime) || now.Sub(e.fetched) > c.cfg.PositiveTTL+c.cfg.StaleGrace)
		if dead && c.lru.Remove(k) {
			n++
		}
	}
	return n
}

// Purge drops every cached answer (not the revocations heard).
func (c *Cache) Purge() { c.lru.Purge() }
