package hook

import (
	"errors"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Publishes held until their records are on disk (SPEC §3.6). Mochi reads
// a client's packets one at a time and acknowledges a publish as soon as
// it has routed it, so a publish that waited in OnPublish for its fsync
// would cap a publisher at one message per fsync. Instead the hook holds
// the publish back (Mochi is told to drop it), starts the write, and a
// goroutine per busy client hands each held publish back to Mochi
// (InjectPacket) once its write has committed: Mochi then retains, routes
// and acknowledges it as usual. The client's read loop goes on meanwhile,
// and the writes of many publishes share a commit. While anything is held
// for a client, every later publish of it is held too and handed back in
// order: acknowledgements and deliveries keep the order of the publishes
// [MQTT-4.6.0-2, -6].

// Marks of a held publish, in the Identifier of its one Filter: a ticket
// number (> 0) when it has records, else one of these.
const (
	markPassed = 0  // allowed, nothing to write: held only to keep the order
	markDenied = -1 // outside the rights: denied when it is due, in order
)

// heldMark reports whether pk is a publish the hook held back, and how.
func heldMark(pk packets.Packet) (int, bool) {
	if len(pk.Filters) != 1 || pk.Filters[0].Filter != ticketMarker {
		return 0, false
	}
	return pk.Filters[0].Identifier, true
}

// held is one publish waiting for its records' commit.
type held struct {
	pk   packets.Packet
	done <-chan error // nil: nothing written
}

// holding reports whether the client has publishes held (lock-free: it is
// asked for every publish).
func (c *client) holding() bool { return c.heldN.Load() > 0 }

// hold holds a publish back: its records (if allowed and it has any) are
// being written; it goes back to Mochi when they are on disk.
func (h *Hook) hold(c *client, pk packets.Packet, allowed bool) (packets.Packet, error) {
	var done <-chan error
	if allowed {
		done = h.prepareRecords(&pk) // tickets pk if there is anything to write
		if done == nil {
			pk.Filters = packets.Subscriptions{{Filter: ticketMarker, Identifier: markPassed}}
		}
	} else {
		pk.Filters = packets.Subscriptions{{Filter: ticketMarker, Identifier: markDenied}}
	}
	c.holdMu.Lock()
	c.held = append(c.held, held{pk: pk, done: done})
	c.heldN.Add(1)
	start := !c.releasing
	c.releasing = true
	c.holdMu.Unlock()
	if start {
		go h.release(c)
	}
	return pk, packets.ErrRejectPacket // Mochi drops it for now, unanswered
}

// release hands a client's held publishes back to Mochi in order, each
// once its write has committed.
func (h *Hook) release(c *client) {
	for {
		c.holdMu.Lock()
		if len(c.held) == 0 {
			c.releasing = false
			c.holdMu.Unlock()
			return
		}
		next := c.held[0]
		c.holdMu.Unlock()
		err := error(nil)
		if next.done != nil {
			err = <-next.done
		}
		if err != nil {
			h.log.Error("publish refused: its messages for persistent sessions could not be stored", "client", c.cl.ID, "topic", next.pk.TopicName, "err", err)
			h.refuseUnstored(c.cl, next.pk)
		} else if ierr := h.server.InjectPacket(c.cl, next.pk); ierr != nil && !errors.Is(ierr, mqtt.ErrConnectionClosed) {
			h.log.Debug("held publish not processed", "client", c.cl.ID, "err", ierr)
		}
		h.dropTicket(&next.pk) // delivered or not, its unclaimed records go (OnPublished did it if Mochi routed it)
		c.holdMu.Lock()
		c.held = c.held[1:]
		c.heldN.Add(-1)
		c.holdMu.Unlock()
	}
}

// refuseUnstored answers a publish whose records could not be written: it
// must not be acknowledged as delivered. A v5 client gets 0x80; a v3.1.1
// one, which cannot be told, is disconnected (it sends the publish again
// when it reconnects).
func (h *Hook) refuseUnstored(cl *mqtt.Client, pk packets.Packet) {
	if pk.FixedHeader.Qos == 0 {
		return
	}
	if cl.Properties.ProtocolVersion >= 5 {
		ackType := packets.Puback
		if pk.FixedHeader.Qos == 2 {
			ackType = packets.Pubrec
		}
		_ = cl.WritePacket(ack(ackType, pk.PacketID, packets.ErrUnspecifiedError))
		return
	}
	cl.Stop(packets.ErrServerUnavailable)
}
