package hook

import (
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tokenmq/tokenmq/token"
	"github.com/tokenmq/tokenmq/tokenauth"
)

// Backpressure pauses a publisher only for a subscriber that is draining.
func TestOnPublishDroppedBackpressure(t *testing.T) {
	r := newRig(t, func(_ *tokenauth.Config, c *Config) {
		c.BackpressurePause, c.BackpressureMinRate = 30*time.Millisecond, 1000
	})
	cl, _ := r.mustConnect("sub", 5, "d", r.apply(token.ActionRead, time.Hour, "a"))
	c := r.h.client(cl)
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}}
	timed := func() time.Duration {
		t0 := time.Now()
		r.h.OnPublishDropped(cl, pk)
		return time.Since(t0)
	}
	// A stalled subscriber: nothing sent for a while. No pause.
	c.draining(time.Now().Add(-time.Second), 1000) // first window
	if d := timed(); d > 20*time.Millisecond {
		t.Fatalf("paused %v for a stalled subscriber", d)
	}
	// A draining one: 100 packets in the last 60 ms (>1000/s). Pause.
	c.drainMu.Lock()
	c.drainAt, c.drainCount = time.Now().Add(-60*time.Millisecond), cl.PacketsSent()
	c.drainMu.Unlock()
	for range 100 {
		if err := cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingresp}}); err != nil {
			t.Fatal(err)
		}
	}
	if d := timed(); d < 30*time.Millisecond {
		t.Fatalf("paused only %v for a draining subscriber", d)
	}
	// QoS 1 deliveries are never paused for (they have their own flow control).
	pk.FixedHeader.Qos = 1
	if d := timed(); d > 20*time.Millisecond {
		t.Fatalf("paused %v for a QoS 1 drop", d)
	}
	if r.h.Dropped() != 3 {
		t.Fatalf("Dropped() = %d, want 3", r.h.Dropped())
	}
}
