package hook

import (
	"errors"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tokenmq/tokenmq/token"
	"github.com/tokenmq/tokenmq/tokenauth"
)

// OnACLCheck: subscriptions by containment, deliveries by matching;
// publishes are left to OnPublish (TestOnPublishDenials), which judges
// each once, by the topic a topic alias stands for.
func TestOnACLCheck(t *testing.T) {
	r := newRig(t, nil)
	apsara := "Token|AK1|" + inst
	rd := r.apply(token.ActionRead, time.Hour, "in/+")
	wr := r.apply(token.ActionWrite, time.Hour, "out/#")
	v5, _ := r.mustConnect("v5", 5, apsara, "R|"+rd+"|W|"+wr)
	v3, _ := r.mustConnect("v3", 4, apsara, "R|"+rd+"|W|"+wr)
	for _, tc := range []struct {
		cl    *mqtt.Client
		topic string
		write bool
		want  bool
	}{
		{v5, "in/a", false, true}, {v5, "in/+", false, true}, {v5, "in/#", false, false},
		{v5, "$share/g/in/+", false, true}, {v5, "$share/g/in/#", false, false},
		{v5, "out/a", false, false}, {v3, "in/#", false, false},
		{v5, "out/a/b", true, true}, {v5, "in/a", true, true}, {v5, "", true, true}, {v3, "in/a", true, true}, // publishes: judged in OnPublish
	} {
		if got := r.h.OnACLCheck(tc.cl, tc.topic, tc.write); got != tc.want {
			t.Errorf("v%d %q write=%v: %v, want %v", tc.cl.Properties.ProtocolVersion, tc.topic, tc.write, got, tc.want)
		}
	}
}

// OnPublish answers denials per SPEC §3.2: v5 QoS 1/2 get 0x87, v3.1.1
// ones are acknowledged and dropped (or disconnected with deny_action
// disconnect), QoS 0 ones are dropped.
func TestOnPublishDenials(t *testing.T) {
	for _, disconnect := range []bool{false, true} {
		r := newRig(t, func(_ *tokenauth.Config, c *Config) { c.DenyDisconnect = disconnect })
		tok := r.apply(token.ActionReadWrite, time.Hour, "ok/#")
		v5, w5 := r.mustConnect("v5", 5, "d", tok)
		v3, w3 := r.mustConnect("v3", 4, "d", tok)

		if _, err := r.h.OnPublish(v5, publish("ok/x", 1, 1, "")); err != nil {
			t.Fatalf("allowed publish: %v", err)
		}
		if _, err := r.h.OnPublish(v5, publish("no/x", 1, 7, "")); !errors.Is(err, packets.ErrRejectPacket) {
			t.Fatalf("v5 denied: %v", err)
		}
		if ack := w5.waitPacket(t, packets.Puback); ack.PacketID != 7 || ack.ReasonCode != 0x87 {
			t.Fatalf("v5 PUBACK %d 0x%02x", ack.PacketID, ack.ReasonCode)
		}
		if _, err := r.h.OnPublish(v5, publish("no/x", 2, 8, "")); !errors.Is(err, packets.ErrRejectPacket) {
			t.Fatalf("v5 QoS 2 denied: %v", err)
		}
		if ack := w5.waitPacket(t, packets.Pubrec); ack.PacketID != 8 || ack.ReasonCode != 0x87 {
			t.Fatalf("v5 PUBREC %d 0x%02x", ack.PacketID, ack.ReasonCode)
		}
		_, err := r.h.OnPublish(v3, publish("no/x", 1, 9, ""))
		switch {
		case disconnect && (!errors.Is(err, packets.ErrRejectPacket) || !w3.isClosed()):
			t.Fatalf("deny_action disconnect: %v, closed %v", err, w3.isClosed())
		case !disconnect && (!errors.Is(err, packets.CodeSuccessIgnore) || w3.isClosed()):
			t.Fatalf("v3.1.1 denied QoS 1: %v (want acknowledged and ignored), closed %v", err, w3.isClosed())
		}
		if _, err := r.h.OnPublish(v3, publish("$SYS/x", 0, 0, "")); err == nil {
			t.Fatal("a $SYS publish was allowed")
		}
	}
}

// A Will goes out only if the connection's rights still cover it when it is
// sent: never after a kick or the disconnect.
func TestOnWill(t *testing.T) {
	r := newRig(t, nil)
	tok := r.apply(token.ActionReadWrite, time.Hour, "dev/#")
	cl, w := r.mustConnect("willing", 5, "d", tok)
	if got, _ := r.h.OnWill(cl, mqtt.Will{TopicName: "dev/lwt"}); got.TopicName != "dev/lwt" {
		t.Fatal("a covered Will was dropped")
	}
	if got, _ := r.h.OnWill(cl, mqtt.Will{TopicName: "other"}); got.TopicName != "" {
		t.Fatal("an uncovered Will went out")
	}
	r.revoke(tok)
	w.waitPacket(t, packets.Disconnect)
	if got, _ := r.h.OnWill(cl, mqtt.Will{TopicName: "dev/lwt"}); got.TopicName != "" {
		t.Fatal("a Will went out after the token was revoked")
	}
}
