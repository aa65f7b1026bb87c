package mqtt

import (
	"bufio"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/stretchr/testify/require"
)

// queueClient is a client whose connection is one end of a pipe; the test
// reads what it is sent from the other.
func queueClient(t *testing.T, max int32) (*Client, *bufio.Reader) {
	t.Helper()
	cl, r, _ := newTestClient()
	cl.ops.options.Capabilities.MaximumClientWritesPending = max
	cl.Properties.ProtocolVersion = 4
	t.Cleanup(func() { cl.Stop(errClientStop); r.Close() })
	return cl, bufio.NewReader(r)
}

func publishPacket(id uint16) *packets.Packet {
	return &packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
		TopicName:   "a/b", PacketID: id, Payload: []byte("x"),
	}
}

// readPublishIDs reads n PUBLISH packets (protocol 4) and returns their ids.
func readPublishIDs(t *testing.T, r *bufio.Reader, n int) []uint16 {
	t.Helper()
	ids := make([]uint16, 0, n)
	for len(ids) < n {
		var fh packets.FixedHeader
		b, err := r.ReadByte()
		require.NoError(t, err)
		require.NoError(t, fh.Decode(b))
		rem, _, err := packets.DecodeLength(r)
		require.NoError(t, err)
		body := make([]byte, rem)
		_, err = io.ReadFull(r, body)
		require.NoError(t, err)
		tl := int(body[0])<<8 | int(body[1])
		ids = append(ids, uint16(body[2+tl])<<8|uint16(body[3+tl]))
	}
	return ids
}

// Packets queued from several goroutines all arrive, each goroutine's in
// its order, while the reader is slower than the writers.
func TestOutboundKeepsOrderAndLosesNothing(t *testing.T) {
	cl, r := queueClient(t, 1<<14)
	const writers, each = 4, 500
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				require.True(t, cl.pushOutbound(publishPacket(uint16(w*each+i+1)), 1<<14))
			}
		}(w)
	}
	ids := readPublishIDs(t, r, writers*each)
	wg.Wait()
	last := make([]int, writers)
	for _, id := range ids {
		w, i := int(id-1)/each, int(id-1)%each
		require.Equal(t, last[w], i, "writer %d out of order", w)
		last[w]++
	}
	require.Eventually(t, func() bool { return cl.OutboundQueued() == 0 }, time.Second, time.Millisecond)
}

// The bound is MaximumClientWritesPending: a push past it is refused, and
// the queue takes packets again once the writer has drained it.
func TestOutboundBoundAndRecovery(t *testing.T) {
	cl, r := queueClient(t, 8)
	// The pipe is unbuffered: the writer blocks on its first packet until the
	// test reads, so the queue fills behind it.
	accepted := 0
	for i := 1; i <= 20; i++ {
		if cl.pushOutbound(publishPacket(uint16(i)), 8) {
			accepted++
		}
	}
	require.GreaterOrEqual(t, accepted, 8)
	require.Less(t, accepted, 20)
	ids := readPublishIDs(t, r, accepted)
	for i := 1; i < len(ids); i++ {
		require.Less(t, ids[i-1], ids[i])
	}
	require.Eventually(t, func() bool { return cl.OutboundQueued() == 0 }, time.Second, time.Millisecond)
	require.True(t, cl.pushOutbound(publishPacket(100), 8))
	require.Equal(t, []uint16{100}, readPublishIDs(t, r, 1))
}

// An idle client holds no writer goroutine and no grown buffer: the writer
// ends once the queue stayed empty for writerLinger, and a burst's large
// buffer is released.
func TestOutboundIdleHoldsNothing(t *testing.T) {
	cl, r := queueClient(t, 1<<14)
	before := runtime.NumGoroutine()
	for i := 1; i <= 1000; i++ {
		require.True(t, cl.pushOutbound(publishPacket(uint16(i)), 1<<14))
	}
	readPublishIDs(t, r, 1000)
	require.Eventually(t, func() bool {
		cl.State.outbound.mu.Lock()
		defer cl.State.outbound.mu.Unlock()
		return !cl.State.outbound.running
	}, 3*writerLinger, time.Millisecond)
	cl.State.outbound.mu.Lock()
	require.LessOrEqual(t, cap(cl.State.outbound.pending), keptQueueCap)
	require.LessOrEqual(t, cap(cl.State.outbound.spare), keptQueueCap)
	cl.State.outbound.mu.Unlock()
	// (testify's Eventually runs its condition on goroutines of its own.)
	for deadline := time.Now().Add(3 * writerLinger); runtime.NumGoroutine() > before; time.Sleep(time.Millisecond) {
		require.True(t, time.Now().Before(deadline), "the writer goroutine did not end")
	}
}

// After Stop nothing is queued and what was pending is dropped.
func TestOutboundClosedRefuses(t *testing.T) {
	cl, _ := queueClient(t, 8)
	cl.State.outbound.mu.Lock() // hold the writer off
	cl.State.outbound.running = true
	cl.State.outbound.pending = append(cl.State.outbound.pending, publishPacket(1))
	cl.State.outboundQty = 1
	cl.State.outbound.mu.Unlock()
	cl.Stop(errClientStop)
	require.False(t, cl.pushOutbound(publishPacket(2), 8))
	require.Equal(t, 0, cl.OutboundQueued())
}

// A writer that waits for more (within writerLinger) is woken by the next
// packet, and a client stopped meanwhile ends it at once.
func TestOutboundLingeringWriter(t *testing.T) {
	cl, r := queueClient(t, 64)
	for i := 1; i <= 3; i++ {
		require.True(t, cl.pushOutbound(publishPacket(uint16(i)), 64))
		require.Equal(t, []uint16{uint16(i)}, readPublishIDs(t, r, 1))
		require.Eventually(t, func() bool {
			cl.State.outbound.mu.Lock()
			defer cl.State.outbound.mu.Unlock()
			return cl.State.outbound.waiting
		}, time.Second, time.Millisecond, "the writer waits for more")
	}
	cl.Stop(errClientStop)
	require.Eventually(t, func() bool {
		cl.State.outbound.mu.Lock()
		defer cl.State.outbound.mu.Unlock()
		return !cl.State.outbound.running
	}, writerLinger/2, time.Millisecond, "a stopped client's writer ends at once")
}

// waitOutbound waits (up to a second) until what cl had queued is written.
func waitOutbound(cl *Client) {
	for i := 0; i < 1000 && cl.OutboundQueued() > 0; i++ {
		time.Sleep(time.Millisecond)
	}
}
