package mqtt

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mochi-mqtt/server/v2/packets"
)

// publishOnConnack publishes a message to the subscribers of its topic as
// soon as a CONNACK is written, then gives a writer time to send it: a
// delivery routed to a resuming client between its CONNACK and the resend
// of its session's in-flight messages.
type publishOnConnack struct {
	HookBase
	s *Server
}

func (h *publishOnConnack) ID() string { return "publish-on-connack" }

func (h *publishOnConnack) Provides(b byte) bool { return b == OnPacketSent }

func (h *publishOnConnack) OnPacketSent(cl *Client, pk packets.Packet, _ []byte) {
	if pk.FixedHeader.Type != packets.Connack {
		return
	}
	h.s.publishToSubscribers(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
		TopicName:   "a/b/c",
		Payload:     []byte("newer"),
	})
	time.Sleep(50 * time.Millisecond)
}

// A resumed session's in-flight messages are written right after its
// CONNACK, before any delivery routed to the new connection meanwhile
// [MQTT-4.6.0-2], and such a delivery is written once, not also resent as
// a duplicate (tokenmq fork: holdOutbound).
func TestResumeResendsBeforeNewerDeliveries(t *testing.T) {
	s := newServer()
	_ = s.AddHook(&publishOnConnack{s: s}, nil)
	defer s.Close()

	id := packets.TPacketData[packets.Connect].Get(packets.TConnectMqtt311).Packet.Connect.ClientIdentifier
	old, _, _ := newTestClient()
	old.ID = id
	old.State.Subscriptions.Add("a/b/c", packets.Subscription{Filter: "a/b/c", Qos: 1})
	s.Topics.Subscribe(id, packets.Subscription{Filter: "a/b/c", Qos: 1})
	old.State.Inflight.Set(*packets.TPacketData[packets.Publish].Get(packets.TPublishQos1).Packet)
	old.Stop(nil) // an offline session with one message in flight
	s.Clients.Add(old)

	r, w := net.Pipe()
	done := make(chan error)
	go func() { done <- s.EstablishConnection("tcp", r) }()
	recv := make(chan []byte)
	go func() {
		buf, _ := io.ReadAll(w)
		recv <- buf
	}()
	_, _ = w.Write(packets.TPacketData[packets.Connect].Get(packets.TConnectMqtt311).RawBytes)
	time.Sleep(200 * time.Millisecond) // the CONNACK, the resend and the newer delivery
	_, _ = w.Write(packets.TPacketData[packets.Disconnect].Get(packets.TDisconnect).RawBytes)
	require.NoError(t, <-done)
	_ = w.Close()
	got := <-recv

	connack := packets.TPacketData[packets.Connack].Get(packets.TConnackAcceptedSessionExists).RawBytes
	resent := packets.TPacketData[packets.Publish].Get(packets.TPublishQos1Dup).RawBytes
	require.True(t, bytes.HasPrefix(got, connack), "the CONNACK first: % x", got)
	rest := got[len(connack):]
	require.True(t, bytes.HasPrefix(rest, resent), "then the message in flight, resent: % x", rest)
	rest = rest[len(resent):]
	require.Equal(t, 1, bytes.Count(rest, []byte("newer")), "then the newer delivery, once: % x", rest)
	require.Equal(t, byte(packets.Publish<<4|2), rest[0], "not as a duplicate: % x", rest)
}

// A QoS 1 delivery to a client that stops while it is being routed (after
// the Closed check, before its queue takes it) stays in flight for the
// client's session, as one to a client already stopped does; it is not
// dropped as if the queue were full (tokenmq fork: the queue closes with
// the client, upstream's channel did not).
func TestDeliveryToAStoppingClientStaysInFlight(t *testing.T) {
	s := newServer()
	defer s.Close()
	cl, _, _ := newTestClient()
	cl.ops = &ops{options: s.Options, info: s.Info, hooks: s.hooks, log: s.Log}
	cl.closeOutbound() // the second half of Stop, after the Closed check
	pk := *packets.TPacketData[packets.Publish].Get(packets.TPublishQos1).Packet
	_, err := s.publishToClient(cl, packets.Subscription{Filter: "a/b/c", Qos: 1}, pk)
	require.ErrorIs(t, err, packets.CodeDisconnect)
	require.Equal(t, 1, cl.State.Inflight.Len(), "the message is in flight for the session")
	require.Equal(t, int64(0), s.Info.MessagesDropped)
}
