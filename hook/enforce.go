package hook

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// OnACLCheck is Mochi's question for every subscription (the raw filter),
// inbound publish and delivery. It must not allocate or block.
func (h *Hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	c := h.client(cl)
	if c == nil {
		return false // never fail open
	}
	if c.parked.Load() { // an offline persistent session: a delivery to its queue
		return !write && h.mayQueue(c, topic)
	}
	if write {
		// Every publish is judged once, in OnPublish, which sees the topic
		// a topic alias stands for (here it is ""), and answers a denial as
		// SPEC §3.2 says: v3.1.1 acknowledged (Mochi would disconnect), v5
		// with 0x87 (as Mochi would).
		return true
	}
	if c.Rights().Readable(topic) {
		return true
	}
	h.obs.ACLDenied("subscribe") // or a delivery after the rights shrank
	return false
}

// OnPublish judges a publish by its resolved topic (after topic aliases),
// answering denials the way SPEC §3.2 says.
func (h *Hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl == h.willer {
		return pk, nil // a delayed Will, checked when it was due (will.go)
	}
	if mark, ok := heldMark(pk); ok { // a publish the hook held back (hold.go), now due
		if mark == markDenied {
			return h.deny(cl, pk)
		}
		return pk, nil
	}
	c := h.client(cl)
	allowed := c != nil && c.Rights().Writable(pk.TopicName)
	if h.cfg.Store == nil { // in memory: Mochi's routing queues it; only the drops are counted here
		if allowed && pk.FixedHeader.Qos > 0 && h.parkedN.Load() > 0 { // drops happen only to offline sessions
			h.targets(&pk, false)
		}
	} else if c != nil && (c.holding() || allowed && pk.FixedHeader.Qos > 0 && (h.persistent.Load() > 0 || pk.FixedHeader.Retain)) {
		return h.hold(c, pk, allowed)
	}
	if allowed {
		return pk, nil
	}
	return h.deny(cl, pk)
}

// deny answers a publish outside the connection's rights (SPEC §3.2).
func (h *Hook) deny(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	h.obs.ACLDenied("publish")
	if cl.Properties.ProtocolVersion >= 5 {
		if pk.FixedHeader.Qos > 0 {
			ackType := packets.Puback
			if pk.FixedHeader.Qos == 2 {
				ackType = packets.Pubrec
			}
			_ = cl.WritePacket(ack(ackType, pk.PacketID, packets.ErrNotAuthorized))
		}
		return pk, packets.ErrRejectPacket
	}
	if h.cfg.DenyDisconnect && pk.FixedHeader.Qos > 0 {
		cl.Stop(packets.ErrNotAuthorized)
		return pk, packets.ErrRejectPacket
	}
	return pk, packets.CodeSuccessIgnore // acknowledged as usual, routed nowhere
}

func ack(typ byte, id uint16, reason packets.Code) packets.Packet {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: typ}, PacketID: id, ReasonCode: reason.Code}
	if reason.Code >= packets.ErrUnspecifiedError.Code {
		pk.Properties.ReasonString = reason.Reason
	}
	return pk
}
