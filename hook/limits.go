package hook

import (
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Limits on what a client sends (SPEC §3.8), applied before Mochi's topic
// tree sees a packet: Mochi's handling of topic levels is quadratic in
// their number, and a client could hold any number of subscriptions.
// A topic or filter with more than MaxTopicLevels levels is refused as a
// malformed one (MQTT 5: PUBACK/PUBREC 0x90, SUBACK 0x8F; MQTT 3.1.1: the
// connection closes); a SUBSCRIBE past MaxSubscriptions gets SUBACK 0x97
// (0x80) for the filters past it.

// Codes and markers of the limits.
const (
	// refusedTopic replaces a refused publish's topic: Mochi drops a
	// client's publish to $SYS without answering (the hook has answered).
	refusedTopic = "$SYS/tokenmq/refused"
)

// levels counts a topic's or filter's levels, in one pass.
func levels(t string) int { return strings.Count(t, "/") + 1 }

// limitPacket applies the limits to a packet a client sent, changing it
// into the packet Mochi is to process. It returns false if the connection
// must close. (The packet is 800 bytes: it is not copied on the way.)
func (h *Hook) limitPacket(cl *mqtt.Client, pk *packets.Packet) bool {
	max := h.cfg.MaxTopicLevels
	v5 := cl.Properties.ProtocolVersion >= 5
	switch pk.FixedHeader.Type {
	case packets.Connect:
		if pk.Connect.WillFlag && levels(pk.Connect.WillTopic) > max {
			return false
		}
	case packets.Publish:
		if levels(pk.TopicName) <= max {
			return true
		}
		if !v5 {
			return false
		}
		if pk.FixedHeader.Qos > 0 {
			typ := packets.Puback
			if pk.FixedHeader.Qos == 2 {
				typ = packets.Pubrec
			}
			_ = cl.WritePacket(ack(typ, pk.PacketID, packets.ErrTopicNameInvalid))
		}
		pk.TopicName = refusedTopic
		pk.Properties.TopicAlias, pk.Properties.TopicAliasFlag = 0, false
	case packets.Subscribe:
		return h.limitSubscribe(cl, pk, v5)
	case packets.Unsubscribe:
		for i, f := range pk.Filters {
			if levels(f.Filter) > max {
				pk.Filters[i].Filter = "" // no such subscription: Mochi answers 0x11 and never walks it
			}
		}
	}
	return true
}

// limitSubscribe refuses the filters of a SUBSCRIBE that are too deep, or
// past the client's subscription limit: Mochi answers them with the code
// set in Refused (0x8F, 0x97; 0x80 for MQTT 3.1.1), and never walks them.
func (h *Hook) limitSubscribe(cl *mqtt.Client, pk *packets.Packet, v5 bool) bool {
	have := cl.State.Subscriptions.Len()
	filters := make(packets.Subscriptions, len(pk.Filters)) // Mochi's slice is the client's packet: not edited in place
	copy(filters, pk.Filters)
	for i, f := range filters {
		if levels(f.Filter) > h.cfg.MaxTopicLevels {
			if !v5 {
				return false
			}
			filters[i].Refused = packets.ErrTopicFilterInvalid.Code
			continue
		}
		if _, exists := cl.State.Subscriptions.Get(f.Filter); exists {
			continue // a resubscribe takes no new place
		}
		if have >= h.cfg.MaxSubscriptions {
			filters[i].Refused = packets.ErrQuotaExceeded.Code
			continue
		}
		have++
	}
	pk.Filters = filters
	return true
}
