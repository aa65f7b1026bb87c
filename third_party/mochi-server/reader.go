package mqtt

import (
	"io"
	"sync"
)

// streamingFill: a read of more than this many bytes means the connection
// is streaming packets, and keeps its buffer for the next read.
const streamingFill = 256

// readBuffers holds the read buffers of connections not streaming.
var readBuffers sync.Map // buffer size -> *sync.Pool

func readBufferPool(size int) *sync.Pool {
	if p, ok := readBuffers.Load(size); ok {
		return p.(*sync.Pool)
	}
	p, _ := readBuffers.LoadOrStore(size, &sync.Pool{New: func() any {
		b := make([]byte, size)
		return &b
	}})
	return p.(*sync.Pool)
}

// connReader is a client's buffered reader (tokenmq fork; upstream keeps a
// bufio.Reader of ClientNetReadBufferSize bytes for the life of every
// connection). A connection that sends a packet now and then (an idle
// device: a PINGREQ a minute) waits for its next bytes in a small inline
// buffer and reads a packet's body straight into the packet; one whose
// bytes stream in (a read fills the inline buffer, or more than
// streamingFill bytes of a full one) borrows a full buffer from a pool and
// keeps it while they do, so a busy publisher reads as it would through
// bufio.
type connReader struct {
	src   io.Reader
	size  int
	buf   *[]byte // borrowed, or nil: the inline buffer is in use
	keep  bool    // the last read filled buf well: keep it for the next
	r, w  int     // unread bytes: (*buf)[r:w], or small[r:w]
	small [16]byte
}

func newConnReader(src io.Reader, size int) *connReader {
	return &connReader{src: src, size: max(size, 64)} // (bufio's minimum is 16)
}

func (c *connReader) bytes() []byte {
	if c.buf != nil {
		return *c.buf
	}
	return c.small[:]
}

// giveBack returns a borrowed buffer that is not worth keeping; nothing
// may be buffered in it.
func (c *connReader) giveBack() {
	if c.buf != nil && !c.keep {
		readBufferPool(c.size).Put(c.buf)
		c.buf = nil
	}
}

// fill reads at least one byte; it is called only when none is buffered.
func (c *connReader) fill() error {
	c.giveBack()
	c.r, c.w = 0, 0
	for {
		n, err := c.src.Read(c.bytes())
		if n > 0 {
			c.w = n
			switch {
			case c.buf != nil:
				c.keep = n > streamingFill
			case n == len(c.small): // bytes are streaming in: read through a full buffer
				c.buf = readBufferPool(c.size).Get().(*[]byte)
				copy(*c.buf, c.small[:n])
				c.keep = true
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// ReadByte reads one byte.
func (c *connReader) ReadByte() (byte, error) {
	if c.r == c.w {
		if err := c.fill(); err != nil {
			return 0, err
		}
	}
	b := c.bytes()[c.r]
	c.r++
	return b, nil
}

// Read reads into p what is buffered; with nothing buffered, a streaming
// connection refills its buffer, and any other reads straight into p.
func (c *connReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.r == c.w {
		if c.buf == nil || !c.keep || len(p) >= c.size {
			c.giveBack()
			c.r, c.w = 0, 0
			return c.src.Read(p)
		}
		if err := c.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, c.bytes()[c.r:c.w])
	c.r += n
	return n, nil
}

// release returns a borrowed buffer for good: the connection ended, and
// what is buffered will not be read. Called by the connection's reader.
func (c *connReader) release() {
	if c == nil {
		return
	}
	c.keep, c.r, c.w = false, 0, 0
	c.giveBack()
}
