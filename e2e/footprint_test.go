package e2e

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"
)

// BenchmarkIdleClientFootprint reports what an idle client costs tokenmq's
// process, from the Go runtime's own accounting: heap in use, goroutine
// stacks and goroutines per client, and the heap the runtime holds from
// the OS (in use, garbage and free spans not yet returned: what RSS sees
// of the heap), for clients that only connected and for clients that also
// subscribed to a command topic of their own, as a device does. The
// clients are raw sockets in this process (a few hundred bytes each on the
// client side). TOKENMQ_FOOTPRINT_HEAP=FILE writes a heap profile taken
// while the clients are connected.
//
//	go test -run='^$' -bench=IdleClientFootprint ./e2e
func BenchmarkIdleClientFootprint(b *testing.B) {
	const n = 2000
	if os.Getenv("TOKENMQ_FOOTPRINT_HEAP") != "" {
		runtime.MemProfileRate = 1 // every allocation, not a sample
	}
	for _, subscribe := range []bool{false, true} {
		b.Run(fmt.Sprint("subscribed=", subscribe), func(b *testing.B) {
			for b.Loop() {
				e := startEnv(b)
				tok := applyWith(e.t, e.api, "bench/idle/#", "R", time.Hour)
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				g := runtime.NumGoroutine()
				conns := make([]net.Conn, 0, n)
				for i := range n {
					code, c, err := rawConnect(e.mqtt, fmt.Sprint("idle-", i), "d", tok, 5*time.Second)
					if err != nil || code != 0 {
						b.Fatalf("connect %d: 0x%02x %v", i, code, err)
					}
					if subscribe {
						if code, closed := rawSubscribe(b, c, fmt.Sprintf("bench/idle/%d/cmd", i)); closed || code != 1 {
							b.Fatalf("subscribe %d: 0x%02x (closed %v)", i, code, closed)
						}
					}
					conns = append(conns, c)
				}
				time.Sleep(500 * time.Millisecond)
				runtime.GC()
				runtime.ReadMemStats(&after)
				if f := os.Getenv("TOKENMQ_FOOTPRINT_HEAP"); f != "" {
					if out, err := os.Create(fmt.Sprint(f, ".", subscribe)); err == nil {
						pprof.WriteHeapProfile(out)
						out.Close()
					}
				}
				per := func(x, y uint64) float64 { return float64(int64(y)-int64(x)) / n / 1024 }
				b.ReportMetric(per(before.HeapInuse, after.HeapInuse), "heap-KiB/client")
				b.ReportMetric(per(before.HeapSys-before.HeapReleased, after.HeapSys-after.HeapReleased), "heap-held-KiB/client")
				b.ReportMetric(per(before.StackInuse, after.StackInuse), "stack-KiB/client")
				b.ReportMetric(float64(runtime.NumGoroutine()-g)/n, "goroutines/client")
				for _, c := range conns {
					c.Close()
				}
			}
		})
	}
}
