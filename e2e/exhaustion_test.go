package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/tokenmq/tokenmq/api"
	"github.com/tokenmq/tokenmq/internal/testkit"
)

// openIdle opens n TCP connections that send nothing, and returns them.
func openIdle(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	var conns []net.Conn
	for range n {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			break // the backlog is full: enough
		}
		conns = append(conns, c)
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	return conns
}

// metric reads one value of the process's /metrics.
func metric(t *testing.T, base, name string) float64 {
	t.Helper()
	return value(scrape(t, base), name)
}

// SPEC §3.8, with the real binary under a low descriptor limit (300):
// sockets that never send CONNECT do not end the listener or starve the
// API. With the default broker.max_connections the connections past it
// are closed at once and the API answers throughout; without the cap the
// process runs out of descriptors, the listener backs off and retries, and
// once the sockets are gone a client connects within 5 s.
func TestDescriptorExhaustion(t *testing.T) {
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("needs prlimit (util-linux)")
	}
	for _, tc := range []struct {
		name   string
		config string
	}{
		{"default cap", "broker:\n  connect_timeout: 60s\n"},
		{"no cap", "broker:\n  connect_timeout: 60s\n  max_connections: 100000\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeConfig(t, tc.config)
			p := startTokenmqUnder(t, []string{"prlimit", "--nofile=300:300"}, adminID, adminSecret,
				"--config", cfg, "--api-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--ws-addr", "", "--data-dir", t.TempDir())
			testkit.WaitFor(t, 5*time.Second, "the MQTT address", func() bool { return p.mqttAddr() != "" })
			admin := &api.Client{Endpoint: p.apiURL, AccessKeyID: adminID, AccessKeySecret: adminSecret}
			tok := applyWith(t, admin, "dev/#", "R,W", time.Hour)
			idle := openIdle(t, p.mqttAddr(), 400)
			if len(idle) < 300 {
				t.Fatalf("only %d idle sockets opened", len(idle))
			}
			if tc.name == "default cap" {
				// The API answers throughout, and so do connected clients' token checks.
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if _, err := admin.QueryToken(ctx, "mqtt-local", tok); err != nil {
					t.Fatalf("the API with the broker's connections at their cap: %v", err)
				}
				if httpGet(t, p.apiURL+"/readyz") != 200 {
					t.Fatal("not ready while the cap refuses connections (it is working as it should)")
				}
				testkit.WaitFor(t, 5*time.Second, "refusals counted", func() bool { return metric(t, p.apiURL, "tokenmq_mqtt_connections_refused_total") > 0 })
			} else {
				testkit.WaitFor(t, 10*time.Second, "accept errors counted", func() bool {
					// The API itself cannot accept while the process has no descriptors: wait for room.
					return strings.Contains(p.logs(), "listener cannot accept")
				})
			}
			for _, c := range idle {
				c.Close()
			}
			start := time.Now()
			testkit.WaitFor(t, 5*time.Second, "a client to connect after the idle sockets went", func() bool {
				c, code := connect5(t, p.mqttAddr(), fmt.Sprint("after-", time.Now().UnixNano()), "d", tok)
				if c != nil {
					c.close()
				}
				return c != nil && code == 0
			})
			testkit.WaitFor(t, 5*time.Second, "/readyz 200 again", func() bool { return httpGet(t, p.apiURL+"/readyz") == 200 })
			if tc.name == "no cap" && metric(t, p.apiURL, "tokenmq_mqtt_accept_errors_total") == 0 {
				t.Fatal("accept errors not counted")
			}
			t.Logf("%s: %d idle sockets; a client connected %v after they closed", tc.name, len(idle), time.Since(start).Round(time.Millisecond))
		})
	}
}

// rssKiB is a process's resident set size.
func rssKiB(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kib int64
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &kib)
			return kib
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// SPEC §3.8: a connection that has not completed CONNECT holds no more
// than a few KiB (here: RSS growth per socket, with 2,000 of them).
func TestPreConnectSocketsAreCheap(t *testing.T) {
	cfg := writeConfig(t, "broker:\n  connect_timeout: 60s\n")
	p := startTokenmq(t, "--config", cfg, "--api-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--ws-addr", "", "--data-dir", t.TempDir())
	testkit.WaitFor(t, 5*time.Second, "the MQTT address", func() bool { return p.mqttAddr() != "" })
	before := rssKiB(t, p.cmd.Process.Pid)
	const n = 2000
	idle := openIdle(t, p.mqttAddr(), n)
	testkit.WaitFor(t, 10*time.Second, "every socket accepted", func() bool {
		return metric(t, p.apiURL, "tokenmq_mqtt_connections_open") >= float64(len(idle))
	})
	time.Sleep(500 * time.Millisecond) // let the heap settle; nothing to wait for
	after := rssKiB(t, p.cmd.Process.Pid)
	per := float64(after-before) / float64(len(idle))
	t.Logf("%d sockets without CONNECT: RSS %d -> %d KiB, %.1f KiB each", len(idle), before, after, per)
	if per > 16 {
		t.Fatalf("%.1f KiB per socket without CONNECT, want a few", per)
	}
}

// ISSUE 16 — an idle device is cheap: 2,000 clients, each connected with
// its own token and subscribed to a command topic of its own as a device
// is, add at most 16 KiB of RSS each to the real binary (upstream Mochi's
// per-client queue alone was 64 KiB). tokenmq-bench's idle-clients-rss
// scenarios measure it beside Mochi and Mosquitto at 5,000 and at the
// descriptor limit.
func TestIdleClientsAreCheap(t *testing.T) {
	cfg := writeConfig(t, "api:\n  rate_limits: {apply_token: 0, query_token: 0, other: 0}\n")
	p := startTokenmq(t, "--config", cfg, "--api-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--ws-addr", "", "--data-dir", t.TempDir())
	testkit.WaitFor(t, 5*time.Second, "the MQTT address", func() bool { return p.mqttAddr() != "" })
	admin := &api.Client{Endpoint: p.apiURL, AccessKeyID: adminID, AccessKeySecret: adminSecret}
	const n = 2000
	toks := make([]string, n)
	for i := range toks {
		toks[i] = applyWith(t, admin, fmt.Sprintf("devices/%d/#", i), "R", time.Hour)
	}
	before := rssKiB(t, p.cmd.Process.Pid)
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i, tok := range toks {
		code, c, err := rawConnect(p.mqttAddr(), fmt.Sprint("device-", i), "device", tok, 10*time.Second)
		if err != nil || code != 0 {
			t.Fatalf("device %d: CONNACK 0x%02x, %v", i, code, err)
		}
		conns = append(conns, c)
		if code, closed := rawSubscribe(t, c, fmt.Sprintf("devices/%d/cmd", i)); closed || code != 1 {
			t.Fatalf("device %d: SUBACK 0x%02x (closed %v)", i, code, closed)
		}
		c.SetDeadline(time.Time{})
	}
	time.Sleep(2 * time.Second) // let the heap settle; nothing to wait for
	after := rssKiB(t, p.cmd.Process.Pid)
	per := float64(after-before) / n
	t.Logf("%d idle subscribed clients: RSS %d -> %d KiB, %.1f KiB each", n, before, after, per)
	if per > 16 {
		t.Fatalf("%.1f KiB of RSS per idle client, want at most 16", per)
	}
	// All still connected (none was closed for its cost).
	if got := metric(t, p.apiURL, "tokenmq_connected_clients"); got != n {
		t.Fatalf("%v clients connected, want %d", got, n)
	}
}

// cpuSeconds is a process's user+system CPU time so far.
func cpuSeconds(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	var utime, stime float64
	fmt.Sscan(fields[11], &utime)
	fmt.Sscan(fields[12], &stime)
	return (utime + stime) / 100 // clock ticks (USER_HZ 100)
}

// SPEC §3.8 with the real binary: a client's deep topics and
// subscription floods cost the broker time and memory linear in what it
// sent, bounded by max_topic_levels and max_subscriptions (the figures go
// to the README's reliability table).
func TestHostileTopicsBounded(t *testing.T) {
	p := startTokenmq(t, "--api-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--ws-addr", "", "--data-dir", t.TempDir())
	testkit.WaitFor(t, 5*time.Second, "the MQTT address", func() bool { return p.mqttAddr() != "" })
	admin := &api.Client{Endpoint: p.apiURL, AccessKeyID: adminID, AccessKeySecret: adminSecret}
	tok := applyWith(t, admin, "#", "R,W", time.Hour)
	pid := p.cmd.Process.Pid

	deepTopic := strings.Repeat("a/", 31999) + "a" // 32,000 levels
	c := mustConnect5(t, p.mqttAddr(), "deep", "d", tok)
	cpu0, start := cpuSeconds(t, pid), time.Now()
	for i := range 278 {
		if code := c.publish(deepTopic, 1, false, fmt.Sprint(i)); code != 0x90 {
			t.Fatalf("publish %d of a 32,000-level topic: 0x%02x, want 0x90", i, code)
		}
	}
	if code := c.subscribe(deepTopic, 1); code != 0x8F {
		t.Fatalf("subscribe to a 32,000-level filter: 0x%02x, want 0x8f", code)
	}
	took, cpu := time.Since(start), cpuSeconds(t, pid)-cpu0
	if took > 10*time.Second || cpu > 5 {
		t.Fatalf("278 deep publishes took %v, %.2f s of broker CPU", took, cpu)
	}
	v3, _ := connect3(t, p.mqttAddr(), "deep-v3", "d", tok)
	v3.c.Publish(deepTopic, 1, false, "x")
	v3.waitLost(5 * time.Second)

	// A subscription flood: 20 SUBSCRIBEs of 500 filters each.
	rss0 := rssKiB(t, pid)
	flood := mustConnect5(t, p.mqttAddr(), "flood", "d", tok)
	granted, quota := 0, 0
	for i := range 20 {
		var subs []paho.SubscribeOptions
		for j := range 500 {
			subs = append(subs, paho.SubscribeOptions{Topic: fmt.Sprintf("f/%d/%d", i, j), QoS: 1})
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		sa, err := flood.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: subs})
		cancel()
		if sa == nil {
			t.Fatalf("SUBSCRIBE %d: %v", i, err)
		}
		for _, r := range sa.Reasons {
			switch r {
			case 1:
				granted++
			case 0x97:
				quota++
			default:
				t.Fatalf("SUBACK code 0x%02x", r)
			}
		}
	}
	if granted != 1000 || quota != 9000 {
		t.Fatalf("%d granted, %d over quota; want 1000 and 9000", granted, quota)
	}
	rss := rssKiB(t, pid) - rss0
	if rss > 64*1024 {
		t.Fatalf("a 10,000-filter flood grew the broker by %d KiB", rss)
	}
	t.Logf("278 publishes + 1 subscribe of 32,000 levels: %v, %.2f s broker CPU; 10,000 filters: 1,000 granted, 9,000 0x97, RSS +%d KiB",
		took.Round(time.Millisecond), cpu, rss)
}
