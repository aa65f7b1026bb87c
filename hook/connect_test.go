package hook

import (
	"errors"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tokenmq/tokenmq/token"
)

// The hook answers a refused CONNECT itself, with SPEC §3.1's code for
// the client's protocol version, and tells Mochi to close.
func TestConnackCodes(t *testing.T) {
	r := newRig(t, nil)
	rw := r.apply(token.ActionReadWrite, time.Hour, "dev/#")
	ro := r.apply(token.ActionRead, time.Hour, "dev/#")
	bound := r.applyBound([]string{"owner"}, token.ActionReadWrite, time.Hour, "dev/#")
	revoked := r.apply(token.ActionReadWrite, time.Hour, "dev/#")
	r.revoke(revoked)
	apsara := "Token|AK1|" + inst
	for _, tc := range []struct {
		name   string
		pk     func(v byte) packets.Packet
		v5, v3 byte
		down   bool
	}{
		{"no password", func(v byte) packets.Packet { return connectPacket(v, apsara, "") }, 0x86, 0x04, false},
		{"forged", func(v byte) packets.Packet { return connectPacket(v, "d", rw[:len(rw)-4]+"AAAA") }, 0x86, 0x04, false},
		{"revoked", func(v byte) packets.Packet { return connectPacket(v, "d", revoked) }, 0x86, 0x04, false},
		{"wrong instance", func(v byte) packets.Packet { return connectPacket(v, "Token|AK1|inst-b", "RW|"+rw) }, 0x87, 0x05, false},
		{"wrong access key", func(v byte) packets.Packet { return connectPacket(v, "Token|AK9|"+inst, "RW|"+rw) }, 0x87, 0x05, false},
		{"type not covered", func(v byte) packets.Packet { return connectPacket(v, apsara, "W|"+ro) }, 0x87, 0x05, false},
		{"token bound to another client ID", func(v byte) packets.Packet { return connectPacket(v, "d", bound) }, 0x85, 0x02, false},
		{"will outside W", func(v byte) packets.Packet {
			pk := connectPacket(v, "d", rw)
			pk.Connect.WillFlag, pk.Connect.WillTopic = true, "elsewhere"
			return pk
		}, 0x87, 0x05, false},
		{"token service down", func(v byte) packets.Packet { return connectPacket(v, "d", r.apply(token.ActionRead, time.Hour, "x")) }, 0x88, 0x03, true},
	} {
		for _, v := range []byte{5, 4} {
			name := tc.name + "/v5"
			want := tc.v5
			if v == 4 {
				name, want = tc.name+"/v3.1.1", tc.v3
			}
			t.Run(name, func(t *testing.T) {
				pk := tc.pk(v) // before the outage: applying needs no validation
				r.val.down.Store(tc.down)
				defer r.val.down.Store(false)
				cl, w := r.newClient("c", v, false)
				err := r.h.OnConnect(cl, pk)
				var code packets.Code
				if !errors.As(err, &code) || code.Code != tc.v5 {
					t.Fatalf("OnConnect = %v, want Mochi code 0x%02x", err, tc.v5)
				}
				if r.h.OnConnectAuthenticate(cl, pk) || r.h.OnACLCheck(cl, "dev/x", false) {
					t.Fatal("a refused client is let in")
				}
				ack := w.waitPacket(t, packets.Connack)
				if ack.ReasonCode != want {
					t.Fatalf("CONNACK 0x%02x, want 0x%02x", ack.ReasonCode, want)
				}
			})
		}
	}
	if r.h.Sessions() != 0 {
		t.Fatalf("%d sessions after refusals", r.h.Sessions())
	}
}

// MQTT 5: the token may come as Authentication Data of method "tokenmq";
// another method is 0x8C.
func TestConnectByAuthMethod(t *testing.T) {
	r := newRig(t, nil)
	tok := r.apply(token.ActionRead, time.Hour, "a/#")
	cl, _ := r.newClient("am", 5, false)
	pk := connectPacket(5, "", "")
	pk.Properties.AuthenticationMethod, pk.Properties.AuthenticationData = "tokenmq", []byte(tok)
	if err := r.connect(cl, pk); err != nil {
		t.Fatalf("token as authentication data refused: %v", err)
	}
	if !r.h.OnACLCheck(cl, "a/b", false) {
		t.Fatal("no read rights")
	}
	cl2, w2 := r.newClient("other-method", 5, false)
	pk.Properties.AuthenticationMethod = "SCRAM-SHA-1"
	if err := r.h.OnConnect(cl2, pk); !errors.Is(err, packets.ErrBadAuthenticationMethod) {
		t.Fatalf("other method: %v", err)
	}
	if ack := w2.waitPacket(t, packets.Connack); ack.ReasonCode != 0x8C {
		t.Fatalf("CONNACK 0x%02x, want 0x8c", ack.ReasonCode)
	}
}

// A connection that died between CONNECT and CONNACK without Mochi
// reporting it is forgotten by the sweep.
func TestSweepForgetsDeadConnections(t *testing.T) {
	r := newRig(t, nil)
	tok := r.apply(token.ActionRead, time.Hour, "a/#")
	cl, _ := r.newClient("dead", 5, false)
	if err := r.h.OnConnect(cl, connectPacket(5, "d", tok)); err != nil {
		t.Fatal(err)
	}
	cl.Stop(errors.New("gone"))
	if r.h.Sessions() != 1 {
		t.Fatal("not registered")
	}
	r.h.sweepOnce()
	if r.h.Sessions() != 0 {
		t.Fatal("a dead connection was not swept")
	}
}
