package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The fleet scenarios: what idle devices, sockets that never send CONNECT
// and a reconnect storm cost a broker process.

// maxClients is the largest number of clients this machine's descriptor
// limit lets a broker hold: tokenmq's default broker.max_connections (the
// hard limit less 64 and a sixteenth; Go raises the soft limit to the hard
// one at start), which the bench's own process (one descriptor a client)
// also fits in.
func maxClients() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 {
		return 1000
	}
	n := int(rl.Max)
	return n - 64 - n/16
}

// idleRound connects one idle client per credential, each subscribed to
// a command topic of its own as a device would be, waits for the process
// to settle, and reports the RSS it added per client over before (taken
// by the caller: before any churn).
func idleRound(t *target, creds []cred, before int64) outcome {
	conns, failed := connectAll(t.mqtt, creds, "idle", 64, true)
	time.Sleep(2 * time.Second) // let the process settle; RSS is a reading, not an event
	after := t.rssKiB()
	closeAll(conns)
	n := int64(len(creds)) - failed
	if n <= 0 {
		return outcome{failures: failed}
	}
	return outcome{value: float64(after-before) / float64(n), failures: failed,
		note: fmt.Sprintf("%d clients: RSS %d MiB -> %d MiB", n, before>>10, after>>10)}
}

// churnRound first has the clients connect, subscribe and leave again for
// d (a fleet's comings and goings, so that the idle clients then live in
// reused memory), then measures them idle against the RSS before the churn.
func churnRound(t *target, creds []cred, d time.Duration) outcome {
	before := t.rssKiB()
	var cycles, failed atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; time.Now().Before(deadline); i += 64 {
				k := i % len(creds)
				c, err := dial(t.mqtt, fmt.Sprintf("churn-%d", i), creds[k].user, creds[k].pass, 20*time.Second)
				if err != nil {
					failed.Add(1)
					continue
				}
				if _, err := c.subscribe(fmt.Sprintf("bench/idle/%d/cmd", k), 1); err != nil {
					failed.Add(1)
				}
				c.close()
				cycles.Add(1)
			}
		}()
	}
	wg.Wait()
	out := idleRound(t, creds, before)
	out.failures += failed.Load()
	out.note = fmt.Sprintf("after %d connect-subscribe-disconnect cycles in %v; %s", cycles.Load(), d, out.note)
	return out
}

// preConnectRound opens n sockets that never send CONNECT and reports the
// RSS each adds, read before the broker's connect timeout closes them.
func preConnectRound(t *target, n int) outcome {
	before := t.rssKiB()
	conns := make([]net.Conn, 0, n)
	var failed int64
	for range n {
		c, err := net.DialTimeout("tcp", t.mqtt, 5*time.Second)
		if err != nil {
			failed++
			continue
		}
		conns = append(conns, c)
	}
	time.Sleep(2 * time.Second)
	after := t.rssKiB()
	for _, c := range conns {
		c.Close()
	}
	if len(conns) == 0 {
		return outcome{failures: failed}
	}
	return outcome{value: float64(after-before) / float64(len(conns)), failures: failed,
		note: fmt.Sprintf("%d sockets: RSS %d MiB -> %d MiB", len(conns), before>>10, after>>10)}
}

// stormRound connects every credential's client at once (one goroutine
// each, released together) and reports the time until the last CONNACK;
// the note has the peak RSS during the storm and, on tokenmq, the token
// validations it cost.
func stormRound(t *target, creds []cred) outcome {
	queries0 := t.tokenQueries()
	t.resetPeakRSS()
	start := make(chan struct{})
	conns := make([]*conn, len(creds))
	var failed atomic.Int64
	var wg sync.WaitGroup
	for i, c := range creds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			cn, err := dialLight(t.mqtt, fmt.Sprintf("storm-%d", i), c.user, c.pass, 60*time.Second)
			if err != nil {
				failed.Add(1)
				return
			}
			conns[i] = cn
		}()
	}
	time.Sleep(100 * time.Millisecond) // every goroutine waiting at the gate
	t0 := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(t0)
	peak := t.peakRSSKiB()
	queries := t.tokenQueries() - queries0
	closeAll(conns)
	note := fmt.Sprintf("%d clients in %.2f s, peak RSS %d MiB", int64(len(creds))-failed.Load(), elapsed.Seconds(), peak>>10)
	if queries0 >= 0 {
		note += fmt.Sprintf(", %d token validations", queries)
	}
	return outcome{value: float64(elapsed.Milliseconds()), failures: failed.Load(), note: note}
}

// connectAll connects a client per credential (at most workers at a
// time); with subscribe, each subscribes to its own command topic.
func connectAll(addr string, creds []cred, prefix string, workers int, subscribe bool) ([]*conn, int64) {
	conns := make([]*conn, len(creds))
	var failed atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, workers)
	for i, c := range creds {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			cn, err := dialLight(addr, fmt.Sprintf("%s-%d", prefix, i), c.user, c.pass, 20*time.Second)
			if err != nil {
				failed.Add(1)
				return
			}
			if subscribe {
				if _, err := cn.subscribe(fmt.Sprintf("bench/idle/%d/cmd", i), 1); err != nil {
					failed.Add(1)
				}
			}
			conns[i] = cn
		}()
	}
	wg.Wait()
	return conns, failed.Load()
}

func closeAll(conns []*conn) {
	for _, c := range conns {
		if c != nil {
			c.close()
		}
	}
}

// resetPeakRSS resets the kernel's RSS high-water mark of the target's
// broker process (VmHWM), so that peakRSSKiB reads the peak from now.
func (t *target) resetPeakRSS() {
	if t.proc != nil && t.proc.cmd.Process != nil {
		os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", t.proc.cmd.Process.Pid), []byte("5"), 0)
	}
}

func (t *target) peakRSSKiB() int64 { return t.statusKiB("VmHWM:") }

// statusKiB reads a field of the broker process's /proc status, in KiB.
func (t *target) statusKiB(field string) int64 {
	if t.proc == nil || t.proc.cmd.Process == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", t.proc.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field) {
			f := strings.Fields(line)
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

// tokenQueries is the token service's count of token validations
// (tokenmq_token_queries_total), or -1 where there is none.
func (t *target) tokenQueries() int64 {
	if t.api == nil {
		return -1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := scrapeMetric(ctx, strings.TrimRight(t.api.Endpoint, "/")+"/metrics", "tokenmq_token_queries_total")
	if err != nil {
		return -1
	}
	return int64(v)
}

// scrapeMetric sums the samples of a Prometheus metric at url.
func scrapeMetric(ctx context.Context, url, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var sum float64
	found := false
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		sum, found = sum+v, true
	}
	if !found {
		return 0, fmt.Errorf("%s: no %s", url, name)
	}
	return sum, nil
}
