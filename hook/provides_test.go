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

// The events the hook handles only at times are provided exactly while
// there is something for them to do: QoS tracking while a persistent
// session exists, the ticket events while a ticket does, OnPacketSent
// while a client awaits its CONNACK. The events that judge every packet
// are always provided.
func TestProvidesOnlyWhileNeeded(t *testing.T) {
	st := openStore(t, t.TempDir())
	r := newRig(t, func(_ *tokenauth.Config, c *Config) { c.Store = st })
	want := func(when string, qos, tickets, connack bool) {
		t.Helper()
		for e, w := range map[byte]bool{
			mqtt.OnQosPublish: qos, mqtt.OnQosComplete: qos, mqtt.OnQosDropped: qos,
			mqtt.OnSelectSubscribers: tickets, mqtt.OnPublished: tickets,
			mqtt.OnPacketSent: connack,
			mqtt.OnPublish:    true, mqtt.OnACLCheck: true, mqtt.OnPacketRead: true, mqtt.OnConnect: true,
			mqtt.OnPacketEncode: false,
		} {
			if got := r.h.Provides(e); got != w {
				t.Errorf("%s: Provides(%#x) = %v, want %v", when, e, got, w)
			}
		}
	}
	want("at start", false, false, false)
	rw := r.apply(token.ActionRead|token.ActionWrite, time.Hour, "t/#")

	// A client between CONNECT and CONNACK.
	cl, _ := r.newClient("a", 5, false)
	pk := connectPacket(5, "d", rw)
	pk.Connect.ClientIdentifier = cl.ID
	cl.ParseConnect("tcp", pk)
	if err := r.h.OnConnect(cl, pk); err != nil {
		t.Fatal(err)
	}
	want("awaiting a CONNACK", false, false, true)
	r.h.OnPacketSent(cl, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}}, nil)
	want("after a packet that is not the CONNACK", false, false, true)
	r.h.OnPacketSent(cl, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}}, nil)
	want("after the CONNACK", false, false, false)

	// A client that goes before its CONNACK is written.
	gone, _ := r.newClient("b", 5, false)
	pk.Connect.ClientIdentifier = gone.ID
	gone.ParseConnect("tcp", pk)
	if err := r.h.OnConnect(gone, pk); err != nil {
		t.Fatal(err)
	}
	r.h.OnDisconnect(gone, errors.New("gone"), false)
	want("after a client that never had its CONNACK", false, false, false)
	r.h.OnPacketSent(gone, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}}, nil)
	want("after a late CONNACK of a forgotten client", false, false, false)

	// A persistent session, online and then offline, until it ends.
	ps, _ := r.newClient("p", 5, false)
	if err := r.connect(ps, persistent(connectPacket(5, "d", rw))); err != nil {
		t.Fatal(err)
	}
	want("with a persistent session", true, false, false)
	r.offline(ps)
	want("with an offline persistent session", true, false, false)
	r.h.OnClientExpired(ps)
	want("after the session expired", false, false, false)

	// A publish with records on disk carries a ticket until it is routed.
	pub := publish("t/retained", 1, 1, "x")
	pub.FixedHeader.Retain = true
	done := r.h.prepareRecords(&pub)
	if done == nil {
		t.Fatal("a retained QoS 1 publish with a store wrote no records")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want("with a ticket", false, true, false)
	r.h.OnPublished(nil, pub)
	want("after the ticketed publish was routed", false, false, false)
}
