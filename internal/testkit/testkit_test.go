package testkit

import (
	"slices"
	"testing"
	"time"
)

func TestLevels(t *testing.T) {
	got := Levels([]string{"a", "+"}, 2)
	want := []string{"a", "+", "a/a", "a/+", "+/a", "+/+"}
	if !slices.Equal(got, want) {
		t.Fatalf("Levels = %q, want %q", got, want)
	}
	if n := len(Levels([]string{"a", "b", "c"}, 3)); n != 3+9+27 {
		t.Fatalf("%d strings of up to 3 levels over 3 words, want 39", n)
	}
}

func TestClock(t *testing.T) {
	start := time.Unix(1_800_000_000, 0)
	c := NewClock(start)
	c.Advance(90 * time.Second)
	if got := c.Now(); !got.Equal(start.Add(90 * time.Second)) {
		t.Fatalf("Now = %v after Advance(90s) from %v", got, start)
	}
}

func TestWaitFor(t *testing.T) {
	n := 0
	WaitFor(t, time.Second, "the third poll", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Fatalf("polled %d times, want 3", n)
	}
}
