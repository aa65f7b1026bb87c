package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/tokenmq/tokenmq/api"
	"github.com/tokenmq/tokenmq/internal/testkit"
)

// SPEC §3.6: a restart of the real binary, by SIGTERM and by SIGKILL in
// the middle of a QoS 1 publish stream to offline persistent subscribers
// (MQTT 3.1.1 and 5), loses no message the publisher got a PUBACK for, and
// no retained message; the sessions resume with Session Present 1.
func TestRestartKeepsAcknowledgedMessages(t *testing.T) {
	for _, how := range []string{"SIGTERM", "SIGKILL"} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir()
			args := []string{"--api-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--ws-addr", "", "--data-dir", dir}
			p := startTokenmq(t, args...)
			testkit.WaitFor(t, 5*time.Second, "the MQTT address", func() bool { return p.mqttAddr() != "" })
			admin := &api.Client{Endpoint: p.apiURL, AccessKeyID: adminID, AccessKeySecret: adminSecret}
			subTok := applyWith(t, admin, "stream/#,status/#", "R", time.Hour)
			pubTok := applyWith(t, admin, "stream/#,status/#", "W", time.Hour)

			for _, v := range []int{4, 5} {
				sub := connectSession(t, v, p.mqttAddr(), fmt.Sprintf("sub-v%d-%s", v, how), subTok)
				if sub.subscribe("stream/#", 1) != 1 {
					t.Fatal("subscriber not set up")
				}
				sub.close()
			}
			pub := mustConnect5(t, p.mqttAddr(), "pub", "d", pubTok)
			if code := pub.publish("status/pump", 1, true, "retained before the restart"); code != 0 {
				t.Fatalf("retained PUBACK 0x%02x", code)
			}

			// Publish until the process goes away; remember what was acknowledged.
			var mu sync.Mutex
			acked := map[string]bool{}
			var n atomic.Int64
			stopped := make(chan struct{})
			go func() {
				defer close(stopped)
				for i := 0; ; i++ {
					ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
					payload := fmt.Sprint("m", i)
					pr, err := pub.c.Publish(ctx, &paho.Publish{Topic: "stream/x", QoS: 1, Payload: []byte(payload)})
					cancel()
					if err != nil || pr == nil {
						return // the broker is gone
					}
					if pr.ReasonCode == 0 {
						mu.Lock()
						acked[payload] = true
						mu.Unlock()
						n.Add(1)
					}
				}
			}()
			testkit.WaitFor(t, 10*time.Second, "200 acknowledged publishes", func() bool { return n.Load() >= 200 })
			if how == "SIGKILL" {
				p.kill()
			} else if err := p.stop(10 * time.Second); err != nil {
				t.Fatalf("graceful stop: %v", err)
			}
			<-stopped
			mu.Lock()
			want := len(acked)
			mu.Unlock()
			if want > 900 {
				t.Fatalf("%d acknowledged: over the 1000-message queue bound, the test proves less", want)
			}

			p2 := startTokenmq(t, args...)
			testkit.WaitFor(t, 5*time.Second, "the MQTT address", func() bool { return p2.mqttAddr() != "" })
			for _, v := range []int{4, 5} {
				back := connectSession(t, v, p2.mqttAddr(), fmt.Sprintf("sub-v%d-%s", v, how), subTok)
				if !back.present() {
					t.Fatalf("v%d: Session Present 0 after the restart: the session was lost", v)
				}
				testkit.WaitFor(t, 15*time.Second, fmt.Sprintf("v%d: %d acknowledged messages", v, want), func() bool {
					got := map[string]bool{}
					for _, m := range back.received() {
						got[m.payload] = true
					}
					for p := range acked {
						if !got[p] {
							return false
						}
					}
					return true
				})
			}
			fresh := mustConnect5(t, p2.mqttAddr(), "reader", "d", subTok)
			fresh.subscribe("status/#", 1)
			if m := fresh.waitMessage("status/pump", 5*time.Second); m.payload != "retained before the restart" || !m.retain {
				t.Fatalf("retained message after the restart: %+v", m)
			}
			t.Logf("%s: %d acknowledged before the restart, all delivered to both sessions after it", how, want)
		})
	}
}

// SPEC §3.6, §4: a damaged broker state file is a clear error at start,
// never a panic.
func TestDamagedStateFileRefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "broker-state.db"), bytes.Repeat([]byte("not a bbolt file "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	out, failed := runTokenmq(t, 20*time.Second, "serve", "--api-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--ws-addr", "", "--data-dir", dir)
	if !failed || strings.Contains(out, "panic") || !strings.Contains(out, "broker state file is damaged") {
		t.Fatalf("exited cleanly: %v, output:\n%s", !failed, out)
	}
}
