package mqtt

import (
	"bytes"
	"io"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"
)

// chunkedReader gives its data in reads of the sizes listed (then the rest
// in one), as a socket gives what has arrived.
type chunkedReader struct {
	data   []byte
	chunks []int
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := len(c.data)
	if len(c.chunks) > 0 {
		n = min(n, c.chunks[0])
		c.chunks = c.chunks[1:]
	}
	n = copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// Whatever the arrival pattern and the mix of ReadByte and Read calls,
// the bytes read are the bytes sent, in order.
func TestConnReaderReadsWhatWasSent(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for trial := 0; trial < 500; trial++ {
		data := make([]byte, rng.Intn(20000))
		rng.Read(data)
		var chunks []int
		for sum := 0; sum < len(data); {
			n := 1 + rng.Intn([]int{4, 40, 600, 5000}[rng.Intn(4)])
			chunks = append(chunks, n)
			sum += n
		}
		size := []int{64, 512, 2048}[rng.Intn(3)]
		r := newConnReader(&chunkedReader{data: data, chunks: chunks}, size)
		var got bytes.Buffer
		for got.Len() < len(data) {
			if rng.Intn(2) == 0 {
				b, err := r.ReadByte()
				require.NoError(t, err)
				got.WriteByte(b)
				continue
			}
			p := make([]byte, min(1+rng.Intn(3000), len(data)-got.Len()))
			_, err := io.ReadFull(r, p)
			require.NoError(t, err, "trial %d", trial)
			got.Write(p)
		}
		require.Equal(t, data, got.Bytes(), "trial %d", trial)
		_, err := r.ReadByte()
		require.ErrorIs(t, err, io.EOF)
		r.release()
		require.Nil(t, r.buf)
	}
}

// A connection sending small packets now and then holds no borrowed
// buffer between them; one streaming keeps its buffer while it streams.
func TestConnReaderBorrowsOnlyWhileStreaming(t *testing.T) {
	ping := []byte{0xc0, 0}
	src := &chunkedReader{data: bytes.Repeat(ping, 3), chunks: []int{2, 2, 2}}
	r := newConnReader(src, 2048)
	for i := 0; i < 3; i++ {
		b, err := r.ReadByte()
		require.NoError(t, err)
		require.Equal(t, byte(0xc0), b)
		_, err = r.ReadByte()
		require.NoError(t, err)
		require.Nil(t, r.buf, "an idle connection holds a borrowed buffer")
	}

	// A stream of 7-byte packets, read as the client reads them (two header
	// bytes, then the body): the first read fills the inline buffer, so a
	// full one is borrowed and kept while reads fill it well.
	packet := []byte{0x30, 5, 0, 1, 'a', 'x', 'y'}
	src = &chunkedReader{data: bytes.Repeat(packet, 1000), chunks: []int{16, 2048, 2048, 2048, 810, 30}}
	r = newConnReader(src, 2048)
	readPacket := func() {
		t.Helper()
		b, err := r.ReadByte()
		require.NoError(t, err)
		require.Equal(t, byte(0x30), b)
		n, err := r.ReadByte()
		require.NoError(t, err)
		body := make([]byte, n)
		_, err = io.ReadFull(r, body)
		require.NoError(t, err)
		require.Equal(t, packet[2:], body)
	}
	readPacket()
	require.NotNil(t, r.buf, "a streaming connection reads through the inline buffer")
	for i := 1; i < 1000; i++ {
		readPacket()
		require.NotNil(t, r.buf, "packet %d", i)
	}
	// The stream slowed (its last read, 30 bytes, was small): drained, the
	// next wait gives the buffer back.
	require.False(t, r.keep)
	_, err := r.ReadByte()
	require.ErrorIs(t, err, io.EOF)
	require.Nil(t, r.buf)
}
