package e2e

import (
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/tokenmq/tokenmq/config"
	"github.com/tokenmq/tokenmq/internal/testkit"
)

// waitRefused waits until the broker refuses tok (it has heard of its
// revocation or expiry).
func waitRefused(t *testing.T, e *env, tok string) {
	t.Helper()
	testkit.WaitFor(t, 5*time.Second, "the broker to refuse the token", func() bool {
		c, code := connect5(t, e.mqtt, fmt.Sprint("probe-", time.Now().UnixNano()), "d", tok)
		if c != nil {
			c.close()
		}
		return c == nil && code == e.refused5(0x86)
	})
}

// SPEC §3.6: an offline session queues a message only if the token that
// gave it its rights is neither revoked nor expired at publish time.
func TestOfflineQueueStopsWithItsToken(t *testing.T) {
	testOfflineQueueStopsWithItsToken(t, startEnv(t, shortTTL))
}

func testOfflineQueueStopsWithItsToken(t *testing.T, e *env) {
	for _, end := range []string{"revoked", "expired"} {
		t.Run(end, func(t *testing.T) {
			ttl := time.Hour
			if end == "expired" {
				ttl = 2 * time.Second
			}
			old := e.apply("fleet/#", "R", ttl)
			sub := connectSession(t, 5, e.mqtt, "sub", old)
			sub.subscribe("fleet/#", 1)
			sub.close()
			pub := mustConnect5(t, e.mqtt, "pub", "d", e.apply("fleet/#,fence", "W", time.Hour))
			pub.publish("fleet/a", 1, false, "while valid")
			if end == "revoked" {
				e.revoke(old)
			}
			waitRefused(t, e, old)
			pub.publish("fleet/a", 1, false, "after the token ended")
			pub.routed("fence") // while the session is offline
			back := connectSession(t, 5, e.mqtt, "sub", e.apply("fleet/#", "R", time.Hour))
			pub.publish("fleet/a", 1, false, "fence")
			got := waitPayloads(t, back, "fleet/", 2)
			if !slices.Equal(got, []string{"while valid", "fence"}) {
				t.Fatalf("received %q, want the message queued while the token was valid, then the fence", got)
			}
		})
	}
}

// broker.max_queued_messages bounds an offline session's queue; the rest
// are dropped and counted. The same in memory (persistence none).
func TestOfflineQueueBound(t *testing.T) {
	for _, persistence := range []string{"bolt", "none"} {
		t.Run(persistence, func(t *testing.T) {
			e := startEnv(t, func(c *config.Config) { c.Broker.MaxQueuedMessages, c.Broker.Persistence = 5, persistence })
			tok := e.apply("fleet/#", "R,W", time.Hour)
			sub := connectSession(t, 4, e.mqtt, "bounded", tok)
			sub.subscribe("fleet/#", 1)
			sub.close()
			testkit.WaitFor(t, 2*time.Second, "the session to be offline", func() bool { return e.srv.Hook().QueueStats().Offline == 1 })
			pub := mustConnect5(t, e.mqtt, "pub", "d", e.apply("fleet/#,fence", "W", time.Hour))
			before := e.srv.Hook().QueueStats()
			for i := range 8 {
				pub.publish("fleet/a", 1, false, fmt.Sprint("m", i))
			}
			pub.routed("fence") // all eight met the offline session
			back := connectSession(t, 4, e.mqtt, "bounded", tok)
			got := waitPayloads(t, back, "fleet/", 5)
			if !slices.Equal(got, []string{"m0", "m1", "m2", "m3", "m4"}) {
				t.Fatalf("received %q, want the first five", got)
			}
			after := e.srv.Hook().QueueStats()
			if after.DroppedFull-before.DroppedFull != 3 || after.Queued-before.Queued != 5 {
				t.Fatalf("queued %d, dropped as full %d; want 5 and 3", after.Queued-before.Queued, after.DroppedFull-before.DroppedFull)
			}
		})
	}
}

// broker.max_session_expiry: an offline session is discarded after it
// (MQTT 5 intervals are capped to it) and counted.
func TestSessionExpiry(t *testing.T) {
	e := startEnv(t, func(c *config.Config) { c.Broker.MaxSessionExpiry = time.Second })
	tok := e.apply("fleet/#", "R,W", time.Hour)
	for _, v := range []int{4, 5} {
		id := fmt.Sprint("short-v", v)
		sub := connectSession(t, v, e.mqtt, id, tok)
		sub.subscribe("fleet/#", 1)
		sub.close()
	}
	testkit.WaitFor(t, 5*time.Second, "both sessions to expire", func() bool { return e.srv.Hook().QueueStats().ExpiredSessions >= 2 })
	pub := mustConnect5(t, e.mqtt, "pub", "d", tok)
	pub.publish("fleet/a", 1, false, "after the expiry")
	for _, v := range []int{4, 5} {
		back := connectSession(t, v, e.mqtt, fmt.Sprint("short-v", v), tok)
		if back.present() {
			t.Fatalf("v%d: Session Present 1 after the session expired", v)
		}
	}
}

// willClient connects an MQTT 5 client with a delayed Will over a
// connection the test can cut (no DISCONNECT: the Will is due).
func willClient(t *testing.T, addr, id, tok string, delay uint32) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	mustConnect5Over(t, conn, id, "d", tok, persistent5, func(c *paho.Connect) {
		c.WillMessage = &paho.WillMessage{Topic: "dev/lwt", Payload: []byte("gone: " + id), QoS: 1}
		c.WillProperties = &paho.WillProperties{WillDelayInterval: &delay}
	})
	return conn
}

// SPEC §3.1: a delayed Will is published only if its token still grants
// it when it is due: not after a revocation or the token's expiry in the
// meantime; a reconnect before the delay cancels it [MQTT-3.1.3-9].
func TestDelayedWillRechecked(t *testing.T) {
	e := startEnv(t, shortTTL)
	watcher := mustConnect5(t, e.mqtt, "watcher", "d", e.apply("dev/#", "R", time.Hour))
	watcher.subscribe("dev/lwt", 1)

	valid := e.apply("dev/#", "R,W", time.Hour)
	revoked := e.apply("dev/#", "R,W", time.Hour)
	expiring := e.apply("dev/#", "R,W", 2*time.Second)
	back := e.apply("dev/#", "R,W", time.Hour)
	cuts := []net.Conn{
		willClient(t, e.mqtt, "valid", valid, 1),
		willClient(t, e.mqtt, "revoked", revoked, 2),
		willClient(t, e.mqtt, "expiring", expiring, 3),
		willClient(t, e.mqtt, "back", back, 2),
	}
	start := time.Now()
	for _, c := range cuts {
		c.Close()
	}
	e.revoke(revoked)
	testkit.WaitFor(t, 2*time.Second, "the reconnect's old session to be offline", func() bool { return e.srv.Hook().QueueStats().Offline >= 4 })
	mustConnect5(t, e.mqtt, "back", "d", back, persistent5) // within its Will's delay
	m := watcher.waitMessage("dev/lwt", 5*time.Second)
	if m.payload != "gone: valid" || time.Since(start) < 900*time.Millisecond {
		t.Fatalf("first Will %q after %v, want the valid one after its 1 s delay", m.payload, time.Since(start))
	}
	time.Sleep(time.Until(start.Add(3500 * time.Millisecond))) // past every other Will's delay; nothing to wait for
	pub := mustConnect5(t, e.mqtt, "fence", "d", e.apply("dev/#", "W", time.Hour))
	pub.publish("dev/lwt", 1, false, "fence")
	testkit.WaitFor(t, 5*time.Second, "the fence", func() bool { return len(payloads(watcher.received(), "dev/lwt")) >= 2 })
	if got := payloads(watcher.received(), "dev/lwt"); !slices.Equal(got, []string{"gone: valid", "fence"}) {
		t.Fatalf("Wills published: %q; want only the valid one (not after revocation, expiry or a reconnect)", got)
	}
}
