package e2e

import (
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/config"
)

// BenchmarkIdleClientFootprint reports what an idle, connected client
// costs tokenmq's process, from the Go runtime's own accounting: heap in
// use and goroutine stacks per client, with the default outgoing queue
// (broker.max_pending_writes) and a small one. The clients are raw
// sockets in this process (a few hundred bytes each on the client side).
//
//	go test -run='^$' -bench=IdleClientFootprint ./e2e
func BenchmarkIdleClientFootprint(b *testing.B) {
	const n = 2000
	for _, queue := range []int32{8192, 256} {
		b.Run(fmt.Sprint("max_pending_writes=", queue), func(b *testing.B) {
			for b.Loop() {
				e := startEnv(b, func(c *config.Config) { c.Broker.MaxPendingWrites = queue })
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
					conns = append(conns, c)
				}
				time.Sleep(500 * time.Millisecond)
				runtime.GC()
				runtime.ReadMemStats(&after)
				per := func(x, y uint64) float64 { return float64(int64(y)-int64(x)) / n / 1024 }
				b.ReportMetric(per(before.HeapInuse, after.HeapInuse), "heap-KiB/client")
				b.ReportMetric(per(before.StackInuse, after.StackInuse), "stack-KiB/client")
				b.ReportMetric(float64(runtime.NumGoroutine()-g)/n, "goroutines/client")
				for _, c := range conns {
					c.Close()
				}
			}
		})
	}
}
