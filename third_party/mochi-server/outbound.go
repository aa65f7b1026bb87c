package mqtt

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// keptQueueCap is the largest queue buffer kept by a client whose queue has
// drained; a larger one (grown by a burst) is released.
const keptQueueCap = 16

// writerLinger is how long a writer with nothing to write waits for more
// before it ends: a client receiving a steady stream keeps its writer (a
// wake-up costs less than a new goroutine), an idle one holds none.
const writerLinger = time.Second

// outQueue is a client's queue of pending outbound packets (tokenmq fork).
// Upstream Mochi gives every client a channel of MaximumClientWritesPending
// slots (64 KiB at 8,192) and a goroutine that waits on it for the life of
// the connection. Here the queue grows with what is pending, and a writer
// goroutine runs while something is, and for writerLinger after: an idle
// client holds neither a queue buffer nor a second goroutine. Writes keep
// their order, the bound and the drop when it is reached are unchanged.
type outQueue struct {
	mu      sync.Mutex
	pending []*packets.Packet // queued, not yet taken by the writer
	spare   []*packets.Packet // the writer's last batch, reused for the next
	running bool              // a writer goroutine is draining or lingering
	waiting bool              // the writer waits on wake for more
	pushed  bool              // something was queued since the writer's linger timer last fired
	closed  bool              // the client stopped: nothing more is queued
	wake    chan struct{}     // made with the first writer; a waiting writer's signal
	queued  atomic.Int32      // len(pending), read without the lock
	held    atomic.Bool       // queued packets wait for releaseOutbound (a connection being set up); set under mu
}

// push queues pk unless the queue holds max packets or is closed, and
// starts a writer if none runs, or wakes one that waits.
func (cl *Client) pushOutbound(pk *packets.Packet, max int32) bool {
	q := &cl.State.outbound
	q.mu.Lock()
	if q.closed || int32(len(q.pending)) >= max {
		q.mu.Unlock()
		return false
	}
	q.pending = append(q.pending, pk)
	q.queued.Store(int32(len(q.pending)))
	q.pushed = true
	wake := q.waiting
	start := q.claimWriter()
	q.waiting = false
	q.mu.Unlock()
	atomic.AddInt32(&cl.State.outboundQty, 1)
	switch {
	case start:
		go cl.drainOutbound()
	case wake:
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// drainOutbound writes what is queued, batch by batch; with nothing left it
// waits for more, and ends once writerLinger passes with nothing queued (a
// later push starts another).
func (cl *Client) drainOutbound() {
	q := &cl.State.outbound
	var linger *time.Timer
	defer func() {
		if linger != nil {
			linger.Stop()
		}
	}()
	for {
		q.mu.Lock()
		batch := q.pending
		if q.closed {
			q.pending, q.spare = nil, nil
			q.running, q.waiting = false, false
			q.mu.Unlock()
			return
		}
		if q.held.Load() { // releaseOutbound starts another writer
			q.running, q.waiting = false, false
			q.mu.Unlock()
			return
		}
		if len(batch) == 0 {
			if linger == nil {
				linger = time.NewTimer(writerLinger)
				q.pushed = false
			}
			q.waiting = true
			q.mu.Unlock()
			select {
			case <-q.wake:
				continue
			case <-linger.C:
			}
			q.mu.Lock()
			if len(q.pending) == 0 && !q.pushed || q.closed {
				q.running, q.waiting = false, false
				if cap(q.pending) > keptQueueCap {
					q.pending = nil
				}
				q.spare = nil
				q.mu.Unlock()
				return
			}
			q.pushed = false // busy within the linger: wait another
			linger.Reset(writerLinger)
			q.waiting = false
			q.mu.Unlock()
			continue
		}
		q.pending, q.spare = q.spare[:0], nil
		q.queued.Store(0)
		q.mu.Unlock()

		for i, pk := range batch {
			more := i < len(batch)-1 || q.queued.Load() > 0
			if err := cl.writePacket(*pk, more); err != nil {
				cl.ops.log.Debug("failed publishing packet", "error", err, "client", cl.ID, "packet", pk)
			}
			batch[i] = nil
			atomic.AddInt32(&cl.State.outboundQty, -1)
		}

		q.mu.Lock()
		if cap(batch) <= keptQueueCap {
			q.spare = batch[:0]
		}
		q.mu.Unlock()
	}
}

// claimWriter reports whether the caller is to start a writer: none runs,
// the queue is open and not held. Call with mu held.
func (q *outQueue) claimWriter() bool {
	if q.running || q.closed || q.held.Load() {
		return false
	}
	q.running = true
	if q.wake == nil {
		q.wake = make(chan struct{}, 1)
	}
	return true
}

// holdOutbound keeps what is queued from being written until
// releaseOutbound (tokenmq fork). A connection is held from before it can
// be found in Clients (where deliveries look for it) until its CONNACK
// and a resumed session's in-flight messages are written: a delivery
// routed to it meanwhile waits in the queue, instead of going out before
// the CONNACK [MQTT-3.2.0-1] or ahead of older messages being resent
// [MQTT-4.6.0-2].
func (cl *Client) holdOutbound() {
	q := &cl.State.outbound
	q.mu.Lock()
	q.held.Store(true)
	q.mu.Unlock()
}

// releaseOutbound ends holdOutbound: what was queued meanwhile is written.
func (cl *Client) releaseOutbound() {
	q := &cl.State.outbound
	q.mu.Lock()
	q.held.Store(false)
	start := len(q.pending) > 0 && q.claimWriter()
	q.mu.Unlock()
	if start {
		go cl.drainOutbound()
	}
}

// queuedPacketIDs returns the packet IDs of the QoS 1 and 2 publishes
// waiting in the queue: in-flight messages that will be written from it.
func (cl *Client) queuedPacketIDs() map[uint16]bool {
	q := &cl.State.outbound
	q.mu.Lock()
	defer q.mu.Unlock()
	var ids map[uint16]bool
	for _, pk := range q.pending {
		if pk.FixedHeader.Type == packets.Publish && pk.FixedHeader.Qos > 0 {
			if ids == nil {
				ids = make(map[uint16]bool)
			}
			ids[pk.PacketID] = true
		}
	}
	return ids
}

// QueuePacket queues pk to be written after what is already queued, as a
// delivery is (tokenmq fork): it waits while the connection is held
// (holdOutbound). It reports false if the queue is full or closed.
func (cl *Client) QueuePacket(pk packets.Packet) bool {
	return cl.pushOutbound(&pk, cl.ops.options.Capabilities.MaximumClientWritesPending)
}

// closeOutbound drops what is queued; nothing more is accepted.
func (cl *Client) closeOutbound() {
	q := &cl.State.outbound
	q.mu.Lock()
	q.closed = true
	dropped := len(q.pending)
	q.pending, q.spare = nil, nil
	q.queued.Store(0)
	wake := q.waiting
	q.waiting = false
	q.mu.Unlock()
	if wake { // a lingering writer ends now
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	atomic.AddInt32(&cl.State.outboundQty, -int32(dropped))
}

// outboundClosed reports whether the queue closed (the client stopped).
func (cl *Client) outboundClosed() bool {
	q := &cl.State.outbound
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed
}

// OutboundQueued is the number of packets waiting in the client's queue.
func (cl *Client) OutboundQueued() int {
	return int(atomic.LoadInt32(&cl.State.outboundQty))
}
