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
	r := c.Rights()
	if write {
		// A publish by topic alias arrives here with topic ""; v3.1.1 denials
		// must be acknowledged, not disconnected (Mochi's choice). Both are
		// judged in OnPublish, which sees the resolved topic.
		if topic == "" || cl.Properties.ProtocolVersion < 5 {
			return true
		}
		if r.Writable(topic) {
			return true
		}
		h.obs.ACLDenied("publish")
		return false
	}
	if r.Readable(topic) {
		return true
	}
	h.obs.ACLDenied("subscribe") // or a delivery after the rights shrank
	return false
}

// OnPublish judges a publish by its resolved topic (after topic aliases),
// answering denials the way SPEC §3.2 says.
func (h *Hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	c := h.client(cl)
	if c != nil && c.Rights().Writable(pk.TopicName) {
		return pk, nil
	}
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

// OnWill lets a Will through only if its topic is publishable with the
// connection's rights at the time it is sent (none after a kick).
func (h *Hook) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	c := h.client(cl)
	if c != nil && c.Rights().Writable(will.TopicName) {
		return will, nil
	}
	h.log.Debug("will dropped: topic outside the connection's rights", "client", cl.ID)
	return mqtt.Will{}, nil // an empty topic reaches no subscriber and is not retained
}
