package api

import (
	"hash/maphash"
	"sync"
	"time"
)

// nonceCache remembers (access key, SignatureNonce) pairs long enough to
// refuse every replay inside the timestamp window, in bounded memory.
//
// A request stamped T is accepted while |now-T| <= window, so a nonce first
// seen at s can be replayed until at most s+2*window. Entries live in three
// generations of one window each; the oldest is dropped at each rotation,
// so every entry is kept for at least two windows. Entries are 64-bit keyed
// hashes (a per-process random seed, so collisions cannot be aimed); when
// capacity is reached, new requests are refused rather than forgetting
// nonces that could then be replayed.
type nonceCache struct {
	mu       sync.Mutex
	seed     maphash.Seed
	window   time.Duration
	capacity int
	gens     [3]map[uint64]struct{}
	genStart time.Time // start of gens[0]
	count    int
}

func newNonceCache(window time.Duration, capacity int) *nonceCache {
	c := &nonceCache{seed: maphash.MakeSeed(), window: window, capacity: capacity}
	for i := range c.gens {
		c.gens[i] = make(map[uint64]struct{})
	}
	return c
}

// nonceResult is the outcome of nonceCache.add.
type nonceResult int

const (
	nonceFresh nonceResult = iota
	nonceUsed
	nonceFull
	nonceError // the shared store failed
)

// add records a nonce of a key seen at now.
func (c *nonceCache) add(keyID, nonce string, now time.Time) nonceResult {
	var h maphash.Hash
	h.SetSeed(c.seed)
	h.WriteString(keyID)
	h.WriteByte(0)
	h.WriteString(nonce)
	sum := h.Sum64()

	c.mu.Lock()
	defer c.mu.Unlock()
	c.rotate(now)
	for _, g := range c.gens {
		if _, ok := g[sum]; ok {
			return nonceUsed
		}
	}
	if c.count >= c.capacity {
		return nonceFull
	}
	c.gens[0][sum] = struct{}{}
	c.count++
	return nonceFresh
}

func (c *nonceCache) rotate(now time.Time) {
	if c.genStart.IsZero() {
		c.genStart = now
	}
	for i := 0; now.Sub(c.genStart) >= c.window; i++ {
		if i == len(c.gens) { // idle for longer than every generation: start afresh
			c.genStart = now
			break
		}
		c.count -= len(c.gens[2])
		c.gens[2], c.gens[1] = c.gens[1], c.gens[0]
		c.gens[0] = make(map[uint64]struct{})
		c.genStart = c.genStart.Add(c.window)
	}
}
