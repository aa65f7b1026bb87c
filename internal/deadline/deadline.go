// Package deadline bounds work by a deadline without starting a timer for
// work that never waits.
//
// context.WithTimeout starts a runtime timer and registers the new context
// with its parent; a QueryToken answered from the embedded store never
// waits on the context (it only asks Err before it reads), and the timer
// was 3 % of the API's CPU. A Context made here answers Deadline and Err
// from the clock and its parent, and starts a real deadline context only
// when something asks for Done (a PostgreSQL query, a long poll, an HTTP
// call), so a caller that does wait gets the same cancellation as with
// context.WithDeadline.
package deadline

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Context is a context.Context cancelled at a deadline or with its parent.
type Context struct {
	parent   context.Context
	deadline time.Time
	mu       sync.Mutex
	inner    atomic.Pointer[context.Context] // the timed context, once Done was asked for
	cancel   context.CancelFunc
	released atomic.Bool
}

// WithTimeout returns a context cancelled timeout from now or with parent,
// whichever is first. Release must be called when the work is done, as a
// context.CancelFunc would be.
func WithTimeout(parent context.Context, timeout time.Duration) *Context {
	d := time.Now().Add(timeout)
	if pd, ok := parent.Deadline(); ok && pd.Before(d) {
		d = pd
	}
	return &Context{parent: parent, deadline: d}
}

// Deadline implements context.Context.
func (c *Context) Deadline() (time.Time, bool) { return c.deadline, true }

// Value implements context.Context (the timed context's, once there is
// one, so that contexts derived from it find it as their parent).
func (c *Context) Value(key any) any {
	if inner := c.inner.Load(); inner != nil {
		return (*inner).Value(key)
	}
	return c.parent.Value(key)
}

// Err implements context.Context: context.DeadlineExceeded once the
// deadline has passed, the parent's error once it is cancelled,
// context.Canceled once released.
func (c *Context) Err() error {
	if inner := c.inner.Load(); inner != nil {
		return (*inner).Err()
	}
	if c.released.Load() {
		return context.Canceled
	}
	if err := c.parent.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// Done implements context.Context. The first call starts the timer.
func (c *Context) Done() <-chan struct{} {
	if inner := c.inner.Load(); inner != nil {
		return (*inner).Done()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if inner := c.inner.Load(); inner != nil {
		return (*inner).Done()
	}
	ctx, cancel := context.WithDeadline(c.parent, c.deadline)
	if c.released.Load() {
		cancel() // asked for after Release: done, as a cancelled context is
	}
	c.cancel = cancel
	c.inner.Store(&ctx)
	return ctx.Done()
}

// Release frees the timer, if Done started one, and cancels the context
// for whoever waits on it, as a context.CancelFunc does.
func (c *Context) Release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.released.Store(true)
	if c.cancel != nil {
		c.cancel()
	}
}
