package mqtt

import (
	"sync"
	"sync/atomic"

	"github.com/mochi-mqtt/server/v2/packets"
)

// keptQueueCap is the largest queue buffer kept by a client whose queue has
// drained; a larger one (grown by a burst) is released.
const keptQueueCap = 16

// outQueue is a client's queue of pending outbound packets (tokenmq fork).
// Upstream Mochi gives every client a channel of MaximumClientWritesPending
// slots (64 KiB at 8,192) and a goroutine that waits on it for the life of
// the connection. Here the queue grows with what is pending, and a writer
// goroutine runs only while something is: an idle client holds neither a
// queue buffer nor a second goroutine. Writes keep their order, the bound
// and the drop when it is reached are unchanged.
type outQueue struct {
	mu      sync.Mutex
	pending []*packets.Packet // queued, not yet taken by the writer
	spare   []*packets.Packet // the writer's last batch, reused for the next
	running bool              // a writer goroutine is draining
	closed  bool              // the client stopped: nothing more is queued
	queued  atomic.Int32      // len(pending), read without the lock
}

// push queues pk unless the queue holds max packets or is closed, and
// starts a writer if none runs.
func (cl *Client) pushOutbound(pk *packets.Packet, max int32) bool {
	q := &cl.State.outbound
	q.mu.Lock()
	if q.closed || int32(len(q.pending)) >= max {
		q.mu.Unlock()
		return false
	}
	q.pending = append(q.pending, pk)
	q.queued.Store(int32(len(q.pending)))
	start := !q.running
	q.running = true
	q.mu.Unlock()
	atomic.AddInt32(&cl.State.outboundQty, 1)
	if start {
		go cl.drainOutbound()
	}
	return true
}

// drainOutbound writes what is queued, batch by batch, and ends when the
// queue is empty (a later push starts another).
func (cl *Client) drainOutbound() {
	q := &cl.State.outbound
	for {
		q.mu.Lock()
		batch := q.pending
		if len(batch) == 0 || q.closed {
			q.pending = nil
			q.queued.Store(0)
			if cap(batch) <= keptQueueCap && !q.closed {
				q.pending = batch[:0]
			}
			q.spare = nil
			q.running = false
			q.mu.Unlock()
			return
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

// closeOutbound drops what is queued; nothing more is accepted.
func (cl *Client) closeOutbound() {
	q := &cl.State.outbound
	q.mu.Lock()
	q.closed = true
	dropped := len(q.pending)
	q.pending, q.spare = nil, nil
	q.queued.Store(0)
	q.mu.Unlock()
	atomic.AddInt32(&cl.State.outboundQty, -int32(dropped))
}

// OutboundQueued is the number of packets waiting in the client's queue.
func (cl *Client) OutboundQueued() int {
	return int(atomic.LoadInt32(&cl.State.outboundQty))
}
