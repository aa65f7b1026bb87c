// Package heapfloor gives the Go garbage collector a floor under its heap
// goal, with a ballast: a pointer-free allocation the process never
// touches, so it costs no resident memory and no marking, but counts in the
// live heap the collector paces itself by.
//
// Without it, a broker with a few busy clients has a live heap of a couple
// of megabytes and a goal of twice that, and collects dozens of times a
// second while it copies a packet for every delivery. Upstream Mochi had a
// floor by accident: every client's 64 KiB outgoing channel (3 MiB for 50
// clients), which was also most of what an idle client cost. A ballast
// keeps the pacing and drops the cost; a fleet of idle clients, whose live
// heap dwarfs it, is paced as it would be without.
package heapfloor

import (
	"sync"
)

// Default is the ballast tokenmq runs with. Larger is not better: the
// collector lets garbage grow to about the ballast's size between cycles,
// and a goal of tens of megabytes measured slower on the fan-out benchmark
// (page faults on memory the runtime had returned) than one of a few.
const Default = 4 << 20

var (
	mu      sync.Mutex
	ballast []byte
)

// Keep holds a ballast of n bytes for the life of the process (a second
// call replaces the first; 0 drops it). The pages are never written, so
// the kernel never backs them.
func Keep(n int) {
	mu.Lock()
	defer mu.Unlock()
	ballast = nil
	if n > 0 {
		ballast = make([]byte, n)
	}
}

// Size is the ballast held.
func Size() int {
	mu.Lock()
	defer mu.Unlock()
	return len(ballast)
}
