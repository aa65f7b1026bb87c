package hook

import (
	"errors"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tokenmq/tokenmq/token"
)

// A client is found the same way whether its connection carries a slot
// (tokenmq's listeners) or not (Mochi's own, the inline client), and
// neither way finds one after the disconnect: the ACL then denies.
func TestSessionLookupWithAndWithoutSlot(t *testing.T) {
	r := newRig(t, nil)
	tok := r.apply(token.ActionReadWrite, time.Hour, "fleet/+/telemetry")
	for _, tc := range []struct {
		name string
		bare bool
		nil_ bool
	}{
		{"slot", false, false},
		{"plain conn", true, false},
		{"no conn", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl, _ := r.newClient("dev-"+tc.name, 5, tc.bare)
			if tc.nil_ {
				cl = r.server.NewClient(nil, "tcp", "dev-"+tc.name, false)
				cl.Properties.ProtocolVersion = 5
			}
			if r.h.OnConnectAuthenticate(cl, packets.Packet{}) || r.h.OnACLCheck(cl, "fleet/a/telemetry", false) {
				t.Fatal("a client that has not connected is let in")
			}
			pk := connectPacket(5, "dev", tok)
			if err := r.connect(cl, pk); err != nil {
				t.Fatalf("OnConnect: %v", err)
			}
			for topic, want := range map[string]bool{"fleet/a/telemetry": true, "fleet/a/cmd": false, "fleet/+/telemetry": true, "fleet/#": false} {
				if got := r.h.OnACLCheck(cl, topic, false); got != want {
					t.Errorf("read %q = %v, want %v", topic, got, want)
				}
			}
			if _, err := r.h.OnPublish(cl, publish("fleet/b/telemetry", 0, 0, "")); err != nil {
				t.Errorf("allowed publish: %v", err)
			}
			if _, err := r.h.OnPublish(cl, publish("fleet/b/cmd", 0, 0, "")); !errors.Is(err, packets.ErrRejectPacket) {
				t.Errorf("denied publish: %v, want it rejected", err)
			}
			if r.h.Sessions() != 1 {
				t.Errorf("Sessions() = %d, want 1", r.h.Sessions())
			}
			r.h.OnDisconnect(cl, nil, false)
			if r.h.OnACLCheck(cl, "fleet/a/telemetry", false) || r.h.OnACLCheck(cl, "fleet/a/telemetry", true) || r.h.OnConnectAuthenticate(cl, pk) {
				t.Fatal("a disconnected client keeps its rights")
			}
			if r.h.Sessions() != 0 {
				t.Errorf("Sessions() = %d after the disconnect, want 0", r.h.Sessions())
			}
		})
	}
}
