// Package testkit holds what tokenmq's tests share and that depends on no
// tokenmq package (so that acl's own tests can use it): a settable clock,
// polling with a deadline, and enumerations of topic levels.
package testkit

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// Clock is a settable clock for code that takes a `now func() time.Time`.
// Its zero value starts at the zero time; NewClock sets a start.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a Clock that reads start until advanced.
func NewClock(start time.Time) *Clock { return &Clock{t: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// WaitFor polls cond until it holds, failing t with what after timeout.
// Tests wait with it instead of sleeping.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	pause := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(pause)
		pause = min(2*pause, 10*time.Millisecond)
	}
}

// Levels returns every string of 1 to n levels over the given level words
// ("a", "a/b", …), for checking topic matching against a brute-force
// reference.
func Levels(words []string, n int) []string {
	cur := slices.Clone(words) // exactly one level
	out := slices.Clone(cur)
	for range n - 1 {
		var next []string
		for _, c := range cur {
			for _, w := range words {
				next = append(next, c+"/"+w)
			}
		}
		out = append(out, next...)
		cur = next
	}
	return out
}
