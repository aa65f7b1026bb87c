package hook

import (
	"errors"
	"strings"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tokenmq/tokenmq/token"
	"github.com/tokenmq/tokenmq/tokenauth"
)

func deep(n int) string { return strings.Repeat("a/", n-1) + "a" }

// SPEC §3.8: a publish or subscribe deeper than max_topic_levels is
// refused as malformed before Mochi's topic tree sees it (v5: PUBACK 0x90,
// SUBACK 0x8F; v3.1.1: the connection closes); past max_subscriptions a
// filter gets SUBACK 0x97 (v5) / 0x80 (v3.1.1).
func TestTopicAndSubscriptionLimits(t *testing.T) {
	r := newRig(t, func(_ *tokenauth.Config, c *Config) { c.MaxTopicLevels, c.MaxSubscriptions = 8, 3 })
	tok := r.apply(token.ActionReadWrite, time.Hour, "#")
	v5, w5 := r.mustConnect("v5", 5, "d", tok)
	v3, _ := r.mustConnect("v3", 4, "d", tok)

	if _, err := r.h.OnPacketRead(v5, publish(deep(8), 1, 1, "ok")); err != nil {
		t.Fatalf("8 levels refused: %v", err)
	}
	out, err := r.h.OnPacketRead(v5, publish(deep(9), 1, 2, "too deep"))
	if err != nil || out.TopicName == deep(9) {
		t.Fatalf("9 levels passed on to Mochi: %v %q", err, out.TopicName)
	}
	if a := w5.waitPacket(t, packets.Puback); a.PacketID != 2 || a.ReasonCode != 0x90 {
		t.Fatalf("PUBACK %d 0x%02x, want 0x90", a.PacketID, a.ReasonCode)
	}
	if err := r.server.InjectPacket(v5, out); err != nil { // Mochi drops the neutralized packet silently
		t.Fatalf("Mochi on the refused publish: %v", err)
	}
	if _, err := r.h.OnPacketRead(v3, publish(deep(9), 1, 3, "x")); !errors.Is(err, packets.ErrRejectPacket) {
		t.Fatalf("v3.1.1 too deep: %v, want the connection closed", err)
	}

	sub := func(id uint16, filters ...string) { // a v5 SUBSCRIBE as Mochi's read loop handles it
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: id}
		for _, f := range filters {
			pk.Filters = append(pk.Filters, packets.Subscription{Filter: f, Qos: 1})
		}
		pk, err := r.h.OnPacketRead(v5, pk)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.server.InjectPacket(v5, pk); err != nil {
			t.Fatal(err)
		}
	}
	sub(10, "a/1", deep(9), "a/2")
	sub(11, "a/3", "a/1", "a/4") // a/1 again takes no place; a/4 is the fourth
	var acks []packets.Packet
	for _, p := range w5.packets(t) {
		if p.FixedHeader.Type == packets.Suback {
			acks = append(acks, p)
		}
	}
	if len(acks) != 2 || string(acks[0].ReasonCodes) != "\x01\x8f\x01" || string(acks[1].ReasonCodes) != "\x01\x01\x97" {
		t.Fatalf("SUBACKs %+v: want 01 8f 01 and 01 01 97", acks)
	}
	if n := v5.State.Subscriptions.Len(); n != 3 {
		t.Fatalf("%d subscriptions, want 3", n)
	}
	if _, err := r.h.OnPacketRead(v3, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 12,
		Filters: packets.Subscriptions{{Filter: deep(9)}}}); !errors.Is(err, packets.ErrRejectPacket) {
		t.Fatalf("v3.1.1 subscribe too deep: %v", err)
	}
	// Unsubscribe from a deep filter never walks the tree.
	out, _ = r.h.OnPacketRead(v5, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Unsubscribe, Qos: 1}, PacketID: 13,
		Filters: packets.Subscriptions{{Filter: deep(100)}}})
	if out.Filters[0].Filter != "" {
		t.Fatal("a deep unsubscribe passed on")
	}
	// A Will topic too deep ends the CONNECT.
	pk := connectPacket(5, "d", tok)
	pk.FixedHeader.Type, pk.Connect.WillFlag, pk.Connect.WillTopic = packets.Connect, true, deep(9)
	cl, _ := r.newClient("deep-will", 5, false)
	if _, err := r.h.OnPacketRead(cl, pk); !errors.Is(err, packets.ErrRejectPacket) {
		t.Fatalf("deep Will: %v", err)
	}
}

// FuzzTopicLevels: the level count is the levels MQTT sees (split on '/'),
// for topics and filters of any depth and content, and the limit refuses
// exactly those over it.
func FuzzTopicLevels(f *testing.F) {
	for _, s := range []string{"", "/", "a", "a/b", "//", "+/+/#", "$SYS/x", deep(64), deep(65), strings.Repeat("/", 1000)} {
		f.Add(s, 64)
	}
	f.Fuzz(func(t *testing.T, topic string, max int) {
		if got, want := levels(topic), len(strings.Split(topic, "/")); got != want {
			t.Fatalf("levels(%q) = %d, want %d", topic, got, want)
		}
		if max < 1 {
			return
		}
		h := &Hook{cfg: Config{MaxTopicLevels: max, MaxSubscriptions: 1000}}
		cl := &mqtt.Client{}
		cl.Properties.ProtocolVersion = 4
		pk := publish(topic, 0, 0, "")
		ok := h.limitPacket(cl, &pk)
		if want := len(strings.Split(topic, "/")) <= max; ok != want {
			t.Fatalf("limit %d, %d levels: passed %v", max, levels(topic), ok)
		}
	})
}
