package heapfloor

import (
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"
)

func rssKiB(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "VmRSS:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	t.Skip("no VmRSS")
	return 0
}

func heapGoal() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// A 64 MiB ballast raises the collector's goal past twice its size, and the
// process's resident memory by almost nothing.
func TestBallastRaisesTheGoalNotTheRSS(t *testing.T) {
	const n = 64 << 20
	runtime.GC()
	before, goal0 := rssKiB(t), heapGoal()
	if goal0 >= 2*n {
		t.Fatalf("goal %d before any ballast; the test needs a small heap", goal0)
	}
	Keep(n)
	defer Keep(0)
	runtime.GC()
	if g := heapGoal(); g < 2*n {
		t.Fatalf("heap goal %d MiB with a %d MiB ballast, want at least %d MiB", g>>20, n>>20, 2*n>>20)
	}
	if grew := rssKiB(t) - before; grew > 4<<10 {
		t.Fatalf("RSS grew %d KiB for an untouched %d MiB ballast", grew, n>>20)
	}
	if Size() != n {
		t.Fatalf("Size %d, want %d", Size(), n)
	}
	Keep(0)
	runtime.GC()
	if g := heapGoal(); g >= 2*n {
		t.Fatalf("heap goal %d MiB after the ballast was dropped", g>>20)
	}
}
