package deadline

import (
	"context"
	"errors"
	"testing"
	"time"
)

type key struct{}

func TestErrWithoutATimer(t *testing.T) {
	ctx := WithTimeout(context.Background(), 30*time.Millisecond)
	defer ctx.Release()
	if err := ctx.Err(); err != nil {
		t.Fatalf("Err before the deadline = %v", err)
	}
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > 30*time.Millisecond {
		t.Fatalf("Deadline = %v, %v", d, ok)
	}
	time.Sleep(40 * time.Millisecond)
	if err := ctx.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err after the deadline = %v, want DeadlineExceeded", err)
	}
	if ctx.inner.Load() != nil {
		t.Fatal("a timer was started though nothing asked for Done")
	}
	select { // asked for now, Done is closed at once, and Err agrees
	case <-ctx.Done():
	case <-time.After(time.Second):
		t.Fatal("Done not closed past the deadline")
	}
	if err := ctx.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err = %v once Done is closed", err)
	}
}

func TestDoneAtTheDeadline(t *testing.T) {
	ctx := WithTimeout(context.Background(), 20*time.Millisecond)
	defer ctx.Release()
	start := time.Now()
	select {
	case <-ctx.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("Done never closed")
	}
	if took := time.Since(start); took < 20*time.Millisecond {
		t.Fatalf("Done closed after %v, before the deadline", took)
	}
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) || !errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
		t.Fatalf("Err = %v, Cause = %v", ctx.Err(), context.Cause(ctx))
	}
}

func TestParentCancels(t *testing.T) {
	for _, waited := range []bool{false, true} {
		parent, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
		ctx := WithTimeout(parent, time.Hour)
		if ctx.Value(key{}) != "v" {
			t.Fatal("Value not the parent's")
		}
		var done <-chan struct{}
		if waited {
			done = ctx.Done()
		}
		cancel()
		if !errors.Is(ctx.Err(), context.Canceled) {
			t.Fatalf("waited=%v: Err = %v after the parent was cancelled", waited, ctx.Err())
		}
		if done == nil {
			done = ctx.Done()
		}
		select {
		case <-done:
		case <-time.After(time.Second):
			t.Fatalf("waited=%v: Done not closed with the parent", waited)
		}
		ctx.Release()
	}
}

func TestParentDeadlineFirst(t *testing.T) {
	parent, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ctx := WithTimeout(parent, time.Hour)
	defer ctx.Release()
	pd, _ := parent.Deadline()
	if d, _ := ctx.Deadline(); !d.Equal(pd) {
		t.Fatalf("Deadline = %v, want the parent's %v", d, pd)
	}
}

func TestRelease(t *testing.T) {
	waiting := WithTimeout(context.Background(), time.Hour)
	done := waiting.Done()
	waiting.Release()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("Release did not close Done")
	}
	idle := WithTimeout(context.Background(), time.Hour)
	idle.Release()
	if !errors.Is(idle.Err(), context.Canceled) {
		t.Fatalf("Err after Release = %v", idle.Err())
	}
	select {
	case <-idle.Done():
	case <-time.After(time.Second):
		t.Fatal("Done asked for after Release is not closed")
	}
}

// A context derived from it is cancelled with it, by the deadline or by
// Release, as from any context.
func TestDerived(t *testing.T) {
	ctx := WithTimeout(context.Background(), 20*time.Millisecond)
	child, cancel := context.WithCancel(ctx)
	defer cancel()
	select {
	case <-child.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("derived context outlived the deadline")
	}
	ctx.Release()
	ctx2 := WithTimeout(context.Background(), time.Hour)
	child2, cancel2 := context.WithCancel(ctx2)
	defer cancel2()
	ctx2.Release()
	select {
	case <-child2.Done():
	case <-time.After(time.Second):
		t.Fatal("derived context outlived Release")
	}
}

func BenchmarkWithTimeout(b *testing.B) {
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.Run("context", func(b *testing.B) {
		for range b.N {
			ctx, cancel := context.WithTimeout(parent, time.Second)
			_ = ctx.Err()
			cancel()
		}
	})
	b.Run("deadline", func(b *testing.B) {
		for range b.N {
			ctx := WithTimeout(parent, time.Second)
			_ = ctx.Err()
			ctx.Release()
		}
	})
}
