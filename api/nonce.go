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
// hashes (a per-process random seed, so collisions cannot be aimed); when a
// key has used its capacity, its new requests are refused rather than
// forgetting nonces that could then be replayed. The capacity is per
// access key (SPEC §2.1): a key that signs too fast fills only its own
// share, and every other key's requests — an admin's RevokeToken while a
// broker key floods QueryToken — go on.
type nonceCache struct {
	mu       sync.Mutex
	seed     maphash.Seed
	window   time.Duration
	capacity int                  // per key
	gens     [3]map[uint64]uint32 // nonce hash -> the key's slot
	genStart time.Time            // start of gens[0]
	slots    map[string]uint32    // access key -> slot in counts
	counts   []int                // nonces remembered per key
}

func newNonceCache(window time.Duration, capacity int) *nonceCache {
	c := &nonceCache{seed: maphash.MakeSeed(), window: window, capacity: capacity, slots: make(map[string]uint32)}
	for i := range c.gens {
		c.gens[i] = make(map[uint64]uint32)
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
	slot, ok := c.slots[keyID]
	if !ok { // the keys are the operator's: few, and known to have signed correctly
		slot = uint32(len(c.counts))
		c.slots[keyID] = slot
		c.counts = append(c.counts, 0)
	}
	if c.counts[slot] >= c.capacity {
		return nonceFull
	}
	c.gens[0][sum] = slot
	c.counts[slot]++
	return nonceFresh
}

// count is how many nonces a key has remembered.
func (c *nonceCache) count(keyID string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if slot, ok := c.slots[keyID]; ok {
		return c.counts[slot]
	}
	return 0
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
		for _, slot := range c.gens[2] {
			c.counts[slot]--
		}
		c.gens[2], c.gens[1] = c.gens[1], c.gens[0]
		c.gens[0] = make(map[uint64]uint32)
		c.genStart = c.genStart.Add(c.window)
	}
}
