package hook

import (
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tokenmq/tokenmq/token"
)

// Wills (SPEC §3.1): a Will is published only if, when it is sent, the
// connection's tokens still grant it: not expired, not revoked, W covering
// its topic. Mochi asks OnWill when the connection ends, and publishes a
// delayed Will (MQTT 5 Will Delay Interval) later without asking again; so
// the hook takes delayed Wills over, checks them again when they are due,
// and publishes them itself.

// OnWill lets a Will through only if the connection's tokens grant it now;
// a delayed one is held back and checked again when it is due.
func (h *Hook) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	c := h.client(cl)
	if c == nil || !c.Permits(token.ActionWrite, will.TopicName, h.auth.Now()) {
		h.log.Debug("will dropped: its topic is outside the connection's rights, or its token expired or was revoked", "client", cl.ID)
		return mqtt.Will{}, nil // an empty topic reaches no subscriber and is not retained
	}
	if will.WillDelayInterval == 0 {
		return will, nil
	}
	h.delayWill(c, will)
	return mqtt.Will{}, nil // Mochi's own delayed copy goes nowhere
}

// delayWill publishes will after its delay if the session's tokens still
// grant it then, unless the client connects again before (cancelWill).
func (h *Hook) delayWill(c *client, will mqtt.Will) {
	s, id := c.Session, c.cl.ID
	w := &pendingWill{}
	w.t = time.AfterFunc(time.Duration(will.WillDelayInterval)*time.Second, func() {
		if !h.wills.CompareAndDelete(id, w) {
			return // cancelled, or replaced by a newer Will
		}
		if !s.Permits(token.ActionWrite, will.TopicName, h.auth.Now()) {
			h.log.Info("delayed will dropped: its token expired or was revoked", "client", id)
			return
		}
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: will.Qos, Retain: will.Retain},
			TopicName: will.TopicName, Payload: will.Payload, Properties: packets.Properties{User: will.User},
			PacketID: uint16(will.Qos)} // as Mochi's own inline publish: a QoS 1/2 packet needs an ID to be valid
		if err := h.server.InjectPacket(h.willer, pk); err != nil {
			h.log.Warn("delayed will not published", "client", id, "err", err)
		}
	})
	if old, loaded := h.wills.Swap(id, w); loaded {
		old.(*pendingWill).t.Stop()
	}
}

// pendingWill is a delayed Will's timer; the map holds the entry, so that a
// timer that fires after it was replaced can tell.
type pendingWill struct{ t *time.Timer }

// cancelWill drops a client's delayed Will: it connected again [MQTT-3.1.3-9].
func (h *Hook) cancelWill(clientID string) {
	if v, ok := h.wills.LoadAndDelete(clientID); ok {
		v.(*pendingWill).t.Stop()
	}
}
