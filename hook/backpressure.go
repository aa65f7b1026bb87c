package hook

import (
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// OnPacketSent counts what the client has been sent (its drain rate), and
// re-checks a resumed session's messages once its CONNACK is out and
// before Mochi resends them.
func (h *Hook) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	c := h.client(cl)
	if c == nil {
		return
	}
	c.sent.Add(1)
	if pk.FixedHeader.Type == packets.Connack {
		h.adopt(c, pk.SessionPresent)
		if pk.SessionPresent {
			h.resume(c)
		}
		if old := c.supersedes; old != nil { // the session is this client's now
			c.supersedes = nil
			h.forget(old)
		}
	}
}

// OnPublishDropped runs on the publisher's goroutine when a delivery to cl
// found its queue full. If cl is draining (just not fast enough), the
// publisher pauses: its socket is not read meanwhile, and TCP pushes back.
func (h *Hook) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	h.dropped.Add(1)
	if h.cfg.BackpressurePause <= 0 || pk.FixedHeader.Qos > 0 {
		return
	}
	c := h.client(cl)
	if c == nil || !c.draining(time.Now(), h.cfg.BackpressureMinRate) {
		return
	}
	time.Sleep(h.cfg.BackpressurePause)
}
