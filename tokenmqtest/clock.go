package tokenmqtest

import (
	"sync"
	"time"

	"github.com/tokenmq/tokenmq/tokenauth"
)

// Clock is a clock that moves only when told (Server.Advance): token
// expiry, expiry notices, disconnects at expiry and session expiry follow
// it, so a test of "the device renews before its token expires" takes
// milliseconds.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	seq    uint64
	timers map[*timer]struct{}
}

type timer struct {
	c   *Clock
	due time.Time
	seq uint64 // creation order, for timers due at the same instant
	f   func()
}

// NewClock returns a Clock standing at start.
func NewClock(start time.Time) *Clock {
	return &Clock{now: start, timers: make(map[*timer]struct{})}
}

// Now implements tokenauth.Clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc implements tokenauth.Clock: f runs when the clock is advanced
// to d from now or past it (in Advance's goroutine, in due order); at once,
// in a goroutine of its own, if d <= 0.
func (c *Clock) AfterFunc(d time.Duration, f func()) tokenauth.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &timer{c: c, due: c.now.Add(d), seq: c.seq, f: f}
	if d <= 0 {
		go f()
		return t
	}
	c.timers[t] = struct{}{}
	return t
}

// Stop implements tokenauth.Timer.
func (t *timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	_, pending := t.c.timers[t]
	delete(t.c.timers, t)
	return pending
}

// Advance moves the clock forward by d, running every timer that falls
// due on the way, in order, each at its own instant; it returns when they
// have run.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	target := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		var next *timer
		for t := range c.timers {
			if !t.due.After(target) && (next == nil || t.due.Before(next.due) || t.due.Equal(next.due) && t.seq < next.seq) {
				next = t
			}
		}
		if next == nil {
			c.now = target
			c.mu.Unlock()
			return
		}
		delete(c.timers, next)
		if next.due.After(c.now) {
			c.now = next.due
		}
		c.mu.Unlock()
		next.f()
	}
}
