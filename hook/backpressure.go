package hook

import (
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// OnPacketSent sees a client's CONNACK go out: it re-checks a resumed
// session's messages before Mochi resends them, and ends a takeover. It is
// provided only while some client awaits its CONNACK (Provides).
func (h *Hook) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	if pk.FixedHeader.Type != packets.Connack {
		return
	}
	c := h.client(cl)
	if c == nil {
		return
	}
	if c.awaitingConnack.CompareAndSwap(true, false) {
		h.connacks.Add(-1)
	}
	h.adopt(c, pk.SessionPresent)
	if pk.SessionPresent {
		h.resume(c)
	}
	if old := c.supersedes; old != nil { // the session is this client's now
		c.supersedes = nil
		h.forget(old)
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
