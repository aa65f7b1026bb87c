package e2e

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

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
