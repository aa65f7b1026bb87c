package hook

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tokenmq/tokenmq/internal/testkit"
	"github.com/tokenmq/tokenmq/token"
	"github.com/tokenmq/tokenmq/tokenauth"
)

func upload(tok, typ string, qos byte, id uint16) packets.Packet {
	return publish(tokenauth.TopicUploadToken, qos, id, fmt.Sprintf(`{"token":%q,"type":%q}`, tok, typ))
}

// invalidNotice decodes the $SYS/tokenInvalidNotice written to w.
func invalidNotice(t *testing.T, w *wire) (code float64, typ string) {
	t.Helper()
	pk, ok := w.noticeOn(t, tokenauth.TopicInvalidNotice)
	if !ok {
		t.Fatal("no $SYS/tokenInvalidNotice")
	}
	var m map[string]any
	if err := json.Unmarshal(pk.Payload, &m); err != nil {
		t.Fatal(err)
	}
	return m["code"].(float64), m["type"].(string)
}

// $SYS/uploadToken with a valid token renews in session: PUBACK, new
// rights, and the subscriptions the new token does not cover are gone.
func TestUploadTokenRenews(t *testing.T) {
	for _, v := range []byte{5, 4} {
		t.Run(fmt.Sprint("v", v), func(t *testing.T) {
			r := newRig(t, nil)
			old := r.apply(token.ActionReadWrite, time.Hour, "a/#", "b/#")
			next := r.apply(token.ActionReadWrite, time.Hour, "b/#")
			cl, w := r.mustConnect("dev", v, "d", old)
			r.subscribe(cl, "a/x")
			r.subscribe(cl, "b/x")
			if _, err := r.h.OnPacketRead(cl, upload(next, "RW", 1, 3)); err != nil {
				t.Fatal(err)
			}
			if ack := w.waitPacket(t, packets.Puback); ack.PacketID != 3 || ack.ReasonCode != 0 {
				t.Fatalf("PUBACK %d 0x%02x", ack.PacketID, ack.ReasonCode)
			}
			if r.h.OnACLCheck(cl, "a/x", false) || !r.h.OnACLCheck(cl, "b/x", false) {
				t.Fatal("rights not replaced")
			}
			subs := cl.State.Subscriptions.GetAll()
			if _, ok := subs["a/x"]; ok || len(subs) != 1 {
				t.Fatalf("subscriptions after renewal: %v", subs)
			}
			if n := r.server.Topics.Subscribers("a/x"); len(n.Subscriptions) != 0 {
				t.Fatal("the topic tree still routes a/x to the client")
			}
			// QoS 2: PUBREC, and the in-flight entry Mochi completes PUBREL with.
			if _, err := r.h.OnPacketRead(cl, upload(r.apply(token.ActionReadWrite, time.Hour, "b/#"), "RW", 2, 4)); err != nil {
				t.Fatal(err)
			}
			if rec := w.waitPacket(t, packets.Pubrec); rec.PacketID != 4 || rec.ReasonCode != 0 {
				t.Fatalf("PUBREC %d 0x%02x", rec.PacketID, rec.ReasonCode)
			}
			if _, ok := cl.State.Inflight.Get(4); !ok {
				t.Fatal("QoS 2 renewal not in flight")
			}
		})
	}
}

// An invalid or malformed renewal ends the connection: v5 gets PUBACK 0x87,
// then the notice (code 1) and DISCONNECT 0x87; v3.1.1 the notice and a
// closed socket.
func TestUploadTokenInvalid(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload func(r *rig) packets.Packet
		typ     string
	}{
		{"forged", func(r *rig) packets.Packet { return upload("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "W", 1, 5) }, "W"},
		{"not JSON", func(r *rig) packets.Packet { return publish(tokenauth.TopicUploadToken, 1, 5, "token") }, ""},
		{"type not covered", func(r *rig) packets.Packet { return upload(r.apply(token.ActionRead, time.Hour, "a/#"), "W", 1, 5) }, "W"},
	} {
		for _, v := range []byte{5, 4} {
			t.Run(fmt.Sprint(tc.name, "/v", v), func(t *testing.T) {
				r := newRig(t, nil)
				cl, w := r.mustConnect("dev", v, "d", r.apply(token.ActionReadWrite, time.Hour, "a/#"))
				if _, err := r.h.OnPacketRead(cl, tc.payload(r)); err != nil {
					t.Fatal(err)
				}
				if r.h.OnACLCheck(cl, "a/x", false) {
					t.Fatal("rights kept after an invalid renewal")
				}
				if v == 5 {
					if ack := w.waitPacket(t, packets.Puback); ack.ReasonCode != 0x87 {
						t.Fatalf("PUBACK 0x%02x", ack.ReasonCode)
					}
					if d := w.waitPacket(t, packets.Disconnect); d.ReasonCode != 0x87 {
						t.Fatalf("DISCONNECT 0x%02x", d.ReasonCode)
					}
				} else {
					waitClosed(t, w)
				}
				if code, typ := invalidNotice(t, w); code != 1 || typ != tc.typ {
					t.Fatalf("notice code %v type %q", code, typ)
				}
			})
		}
	}
}

func waitClosed(t *testing.T, w *wire) {
	t.Helper()
	testkit.WaitFor(t, 3*time.Second, "the connection to close", w.isClosed)
}

// With the token service down a renewal is not checked: v5 QoS 1 gets
// 0x80, the connection and its rights stay.
func TestUploadTokenUnavailable(t *testing.T) {
	r := newRig(t, nil)
	cl, w := r.mustConnect("dev", 5, "d", r.apply(token.ActionReadWrite, time.Hour, "a/#"))
	next := r.apply(token.ActionReadWrite, time.Hour, "b/#")
	r.val.down.Store(true)
	if _, err := r.h.OnPacketRead(cl, upload(next, "RW", 1, 6)); err != nil {
		t.Fatal(err)
	}
	if ack := w.waitPacket(t, packets.Puback); ack.ReasonCode != 0x80 {
		t.Fatalf("PUBACK 0x%02x, want 0x80", ack.ReasonCode)
	}
	if !r.h.OnACLCheck(cl, "a/x", false) || w.isClosed() {
		t.Fatal("an unchecked renewal changed the connection")
	}
}

// Other client publishes to $SYS are answered as denied (Mochi would drop
// them unanswered); other packets pass untouched.
func TestOnPacketReadOtherSys(t *testing.T) {
	r := newRig(t, nil)
	tok := r.apply(token.ActionReadWrite, time.Hour, "#")
	v5, w5 := r.mustConnect("v5", 5, "d", tok)
	v3, w3 := r.mustConnect("v3", 4, "d", tok)
	for cl, want := range map[*mqtt.Client]byte{v5: 0x87, v3: 0x00} {
		if _, err := r.h.OnPacketRead(cl, publish("$SYS/broker/x", 1, 11, "")); err != nil {
			t.Fatal(err)
		}
		w := w5
		if cl == v3 {
			w = w3
		}
		if ack := w.waitPacket(t, packets.Puback); ack.PacketID != 11 || ack.ReasonCode != want {
			t.Fatalf("v%d: PUBACK 0x%02x, want 0x%02x", cl.Properties.ProtocolVersion, ack.ReasonCode, want)
		}
	}
	if _, err := r.h.OnPacketRead(v5, publish("a/b", 1, 12, "")); err != nil || len(w5.packets(t)) != 1 {
		t.Fatal("an ordinary publish was answered by the hook")
	}
}

func authPacket(method, data string, props ...packets.UserProperty) packets.Packet {
	return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Auth}, ReasonCode: 0x19,
		Properties: packets.Properties{AuthenticationMethod: method, AuthenticationData: []byte(data), User: props}}
}

// MQTT 5 re-authentication: AUTH 0x19 with method tokenmq renews; an
// invalid token or a bad type ends the connection; another method is 0x8C.
func TestOnAuthPacket(t *testing.T) {
	r := newRig(t, func(c *tokenauth.Config, _ *Config) { c.ExpireNotice = 900 * time.Millisecond })
	cl, w := r.mustConnect("dev", 5, "d", r.apply(token.ActionReadWrite, time.Hour, "a/#"))
	next := r.apply(token.ActionRead, 1200*time.Millisecond, "b/#")
	if _, err := r.h.OnAuthPacket(cl, authPacket("tokenmq", next, packets.UserProperty{Key: "type", Val: "R"})); err != nil {
		t.Fatal(err)
	}
	if a := w.waitPacket(t, packets.Auth); a.ReasonCode != 0 || a.Properties.AuthenticationMethod != "tokenmq" {
		t.Fatalf("AUTH 0x%02x %q", a.ReasonCode, a.Properties.AuthenticationMethod)
	}
	if !r.h.OnACLCheck(cl, "b/x", false) || r.h.OnACLCheck(cl, "a/x", false) || !r.h.OnACLCheck(cl, "a/x", true) {
		t.Fatal("re-authentication as R: want read b/#, write a/#")
	}
	// A client that renewed by AUTH gets its expiry notice with user properties.
	var notice packets.Packet
	testkit.WaitFor(t, 3*time.Second, "the expiry notice", func() bool {
		var ok bool
		notice, ok = w.noticeOn(t, tokenauth.TopicExpireNotice)
		return ok
	})
	if len(notice.Properties.User) != 2 || notice.Properties.User[1].Val != "R" {
		t.Fatalf("expiry notice user properties %+v", notice.Properties.User)
	}

	if _, err := r.h.OnAuthPacket(cl, authPacket("SCRAM", "x")); !errors.Is(err, packets.ErrBadAuthenticationMethod) {
		t.Fatalf("other method: %v", err)
	}
	r.val.down.Store(true)
	if _, err := r.h.OnAuthPacket(cl, authPacket("tokenmq", r.apply(token.ActionRead, time.Hour, "c"))); !errors.Is(err, packets.ErrServerUnavailable) {
		t.Fatalf("outage: %v", err)
	}
	r.val.down.Store(false)
	if _, err := r.h.OnAuthPacket(cl, authPacket("tokenmq", next, packets.UserProperty{Key: "type", Val: "X"})); err != nil {
		t.Fatal(err)
	}
	if d := w.waitPacket(t, packets.Disconnect); d.ReasonCode != 0x87 {
		t.Fatalf("DISCONNECT 0x%02x", d.ReasonCode)
	}
	if _, err := r.h.OnAuthPacket(cl, authPacket("tokenmq", next)); !errors.Is(err, packets.ErrNotAuthorized) {
		t.Fatalf("AUTH on a closing connection: %v", err)
	}

	cl2, w2 := r.mustConnect("dev2", 5, "d", r.apply(token.ActionReadWrite, time.Hour, "a/#"))
	if _, err := r.h.OnAuthPacket(cl2, authPacket("tokenmq", "forged-token")); err != nil {
		t.Fatal(err)
	}
	if d := w2.waitPacket(t, packets.Disconnect); d.ReasonCode != 0x87 {
		t.Fatalf("DISCONNECT 0x%02x", d.ReasonCode)
	}
	if code, _ := invalidNotice(t, w2); code != 1 {
		t.Fatalf("notice code %v", code)
	}
}
