package e2e

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/tokenmq/tokenmq/config"
)

// SPEC §3.2: publish, subscribe (containment) and delivery, MQTT 5.
func TestACLMQTT5(t *testing.T) { testACLMQTT5(t, startEnv(t)) }

func testACLMQTT5(t *testing.T, e *env) {
	// The watcher sees everything a client could leak: "#" and "$SYS/#".
	watcher := mustConnect5(t, e.mqtt, "watcher", "w", e.apply("#,$SYS/#", "R", time.Hour))
	if c := watcher.subscribe("#", 1); c != 1 {
		t.Fatalf("watcher # SUBACK 0x%02x", c)
	}
	dev := mustConnect5(t, e.mqtt, "dev", "d", e.apply("a/+,s/#", "R,W", time.Hour))

	// Publish: allowed topics go through; denied QoS 1/2 get 0x87, QoS 0 is dropped.
	for _, tc := range []struct {
		topic string
		qos   byte
		want  byte
	}{
		{"a/b", 1, 0x00}, {"a/b", 2, 0x00}, {"s/x/y", 1, 0x00},
		{"a/b/c", 1, 0x87}, {"a", 1, 0x87}, {"b/x", 2, 0x87}, {"$SYS/x", 1, 0x87}, {"$share/g/a/b", 1, 0x87},
	} {
		if got := dev.publish(tc.topic, tc.qos, false, "p:"+tc.topic); got != tc.want {
			t.Errorf("publish %s QoS %d: 0x%02x, want 0x%02x", tc.topic, tc.qos, got, tc.want)
		}
	}
	dev.publish("b/qos0", 0, false, "p:b/qos0")
	dev.publish("a/end", 1, false, "p:a/end") // a marker after everything else
	watcher.waitMessage("a/end", 5*time.Second)
	var got []string
	for _, m := range watcher.received() {
		got = append(got, m.topic)
	}
	if want := "a/b a/b s/x/y a/end"; strings.Join(got, " ") != want {
		t.Fatalf("watcher received %q, want %q", strings.Join(got, " "), want)
	}

	// Subscribe: filter containment, not string comparison.
	for _, tc := range []struct {
		filter string
		want   byte
	}{
		{"a/b", 1}, {"a/+", 1}, {"s/#", 1}, {"s/+/+", 1}, {"$share/grp/a/+", 1}, {"$SHARE/grp/a/x", 1},
		{"a/#", 0x87}, {"+/b", 0x87}, {"#", 0x87}, {"a/b/c", 0x87}, {"$share/grp/#", 0x87}, {"$SYS/#", 0x87},
	} {
		if got := dev.subscribe(tc.filter, 1); got != tc.want {
			t.Errorf("subscribe %s: 0x%02x, want 0x%02x", tc.filter, got, tc.want)
		}
	}
}

// A publish by topic alias alone reaches Mochi's ACL check with topic "";
// the hook judges the resolved topic.
func TestTopicAliasPublishIsChecked(t *testing.T) {
	e := startEnv(t)
	watcher := mustConnect5(t, e.mqtt, "watcher", "w", e.apply("#", "R", time.Hour))
	watcher.subscribe("#", 1)
	dev := mustConnect5(t, e.mqtt, "dev", "d", e.apply("ok/+", "W", time.Hour))
	pub := func(topic string, alias uint16) byte {
		ctx := ctxTimeout(t, 5*time.Second)
		pr, _ := dev.c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(topic),
			Properties: &paho.PublishProperties{TopicAlias: &alias}})
		if pr == nil {
			t.Fatalf("publish %q alias %d: no PUBACK", topic, alias)
		}
		return pr.ReasonCode
	}
	if c := pub("ok/1", 1); c != 0 {
		t.Fatalf("alias set with an allowed topic: 0x%02x", c)
	}
	if c := pub("", 1); c != 0 {
		t.Fatalf("alias 1 alone (ok/1): 0x%02x", c)
	}
	if c := pub("denied/x", 2); c != 0x87 {
		t.Fatalf("alias set with a denied topic: 0x%02x, want 0x87", c)
	}
	if c := pub("", 2); c != 0x87 {
		t.Fatalf("alias 2 alone: 0x%02x, want 0x87", c)
	}
	dev.publish("ok/end", 1, false, "end")
	watcher.waitMessage("ok/end", 5*time.Second)
	var got []string
	for _, m := range watcher.received() {
		got = append(got, m.topic+"="+m.payload)
	}
	// The alias-only publish arrives under its resolved topic (payload ""); the denied ones never.
	if want := "ok/1=ok/1 ok/1= ok/end=end"; strings.Join(got, " ") != want {
		t.Fatalf("watcher received %q, want %q", strings.Join(got, " "), want)
	}
}

// SPEC §3.2 for MQTT 3.1.1: a denied QoS 1/2 publish is acknowledged and
// dropped and the connection stays; a denied subscription gets 0x80.
func TestACLMQTT311(t *testing.T) { testACLMQTT311(t, startEnv(t)) }

func testACLMQTT311(t *testing.T, e *env) {
	watcher := mustConnect5(t, e.mqtt, "watcher", "w", e.apply("#", "R", time.Hour))
	watcher.subscribe("#", 1)
	dev, code := connect3(t, e.mqtt, "dev3", "d", e.apply("a/+", "R,W", time.Hour))
	if dev == nil {
		t.Fatalf("v3 connect: 0x%02x", code)
	}
	for _, qos := range []byte{0, 1, 2} {
		if err := dev.publish("denied/x", qos, "no"); err != nil {
			t.Fatalf("denied publish QoS %d not acknowledged normally: %v", qos, err)
		}
	}
	if err := dev.publish("a/ok", 1, "yes"); err != nil {
		t.Fatal(err)
	}
	watcher.waitMessage("a/ok", 5*time.Second)
	neverReceived(t, watcher.received(), func(m message) bool { return m.topic == "denied/x" })
	if c := dev.subscribe("a/#", 1); c != 0x80 {
		t.Fatalf("v3 denied subscribe: 0x%02x, want 0x80", c)
	}
	if c := dev.subscribe("a/+", 1); c != 1 {
		t.Fatalf("v3 allowed subscribe: 0x%02x", c)
	}
	select {
	case <-dev.lost:
		t.Fatal("the v3.1.1 connection was closed by a denial")
	default:
	}
}

func TestDenyActionDisconnect(t *testing.T) {
	e := startEnv(t, func(c *config.Config) { c.Broker.DenyAction = "disconnect" })
	dev, _ := connect3(t, e.mqtt, "dev3", "d", e.apply("a/+", "W", time.Hour))
	dev.c.Publish("denied/x", 1, false, "no")
	dev.waitLost(5 * time.Second)
}

// Retained messages reach a subscriber only on topics its token may read.
func TestRetainedMessagesRespectACL(t *testing.T) { testRetainedMessagesRespectACL(t, startEnv(t)) }

func testRetainedMessagesRespectACL(t *testing.T, e *env) {
	pub := mustConnect5(t, e.mqtt, "pub", "p", e.apply("#", "W", time.Hour))
	for _, topic := range []string{"a/1", "a/2", "b/1"} {
		if c := pub.publish(topic, 1, true, "retained "+topic); c != 0 {
			t.Fatalf("retained publish %s: 0x%02x", topic, c)
		}
	}
	sub := mustConnect5(t, e.mqtt, "sub", "s", e.apply("a/+", "R", time.Hour))
	if c := sub.subscribe("#", 1); c != 0x87 {
		t.Fatalf("subscribe # with a/+ rights: 0x%02x", c)
	}
	if c := sub.subscribe("a/+", 1); c != 1 {
		t.Fatalf("subscribe a/+: 0x%02x", c)
	}
	sub.waitMessage("a/1", 5*time.Second)
	sub.waitMessage("a/2", 5*time.Second)
	neverReceived(t, sub.received(), func(m message) bool { return m.topic == "b/1" })
}

// SPEC §3.1: a Will is accepted only if its topic is publishable.
func TestWillOutsideRightsRefused(t *testing.T) { testWillOutsideRightsRefused(t, startEnv(t)) }

func testWillOutsideRightsRefused(t *testing.T, e *env) {
	tok := e.apply("dev/+/status", "R,W", time.Hour)
	will := func(topic string) func(*paho.Connect) {
		return func(c *paho.Connect) {
			c.WillMessage = &paho.WillMessage{Topic: topic, Payload: []byte("gone"), QoS: 1}
		}
	}
	watcher := mustConnect5(t, e.mqtt, "watcher", "w", e.apply("#", "R", time.Hour))
	watcher.subscribe("#", 1)
	if e.mosq != nil {
		// Mosquitto shows a plugin no Will at CONNECT: the connection is
		// accepted, and the Will refused when it is due.
		conn, err := net.Dial("tcp", e.mqtt)
		if err != nil {
			t.Fatal(err)
		}
		mustConnect5Over(t, conn, "bad-will", "d", tok, will("other/status"))
		conn.Close()
	} else {
		if _, code := connect5(t, e.mqtt, "bad-will", "d", tok, will("other/status")); code != 0x87 {
			t.Fatalf("will outside rights: CONNACK 0x%02x, want 0x87", code)
		}
		if c3, code := connect3(t, e.mqtt, "bad-will3", "d", tok, "other/status", "gone"); c3 != nil || code != 0x05 {
			t.Fatalf("v3 will outside rights: CONNACK 0x%02x, want 0x05", code)
		}
	}
	conn, err := net.Dial("tcp", e.mqtt)
	if err != nil {
		t.Fatal(err)
	}
	mustConnect5Over(t, conn, "good-will", "d", tok, will("dev/7/status"))
	conn.Close() // abnormal end: the will goes out
	if m := watcher.waitMessage("dev/7/status", 5*time.Second); m.payload != "gone" {
		t.Fatalf("will payload %q", m.payload)
	}
	neverReceived(t, watcher.received(), func(m message) bool { return m.topic == "other/status" })
}
