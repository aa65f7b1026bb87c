package bench

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Packet types (MQTT 3.1.1 §2.2.1), as the first byte's high nibble.
const (
	typeConnack  = 2
	typePublish  = 3
	typePuback   = 4
	typeSuback   = 9
	typeDisconn  = 14
	typePingresp = 13
)

// conn is a minimal MQTT 3.1.1 client connection: just what the scenarios
// need, with buffered writes so that a publisher is limited by the broker,
// not by syscalls.
type conn struct {
	nc     net.Conn
	r      *bufio.Reader
	w      *bufio.Writer
	wmu    sync.Mutex // for connections written from two goroutines (a subscriber's PUBACKs and close)
	nextID uint16
}

// dial connects and authenticates with a clean session; a refusal is
// ErrRefused (wrapped with the code).
func dial(addr, clientID, username, password string, timeout time.Duration) (*conn, error) {
	return dialSession(addr, clientID, username, password, timeout, true)
}

// dialLight is dial for a client that stays idle: small buffers, so that
// thousands of them cost the bench process little.
func dialLight(addr, clientID, username, password string, timeout time.Duration) (*conn, error) {
	return dialWith(addr, clientID, username, password, timeout, true, 512)
}

// dialSession is dial with the session's CleanSession flag chosen.
func dialSession(addr, clientID, username, password string, timeout time.Duration, clean bool) (*conn, error) {
	return dialWith(addr, clientID, username, password, timeout, clean, 64<<10)
}

func dialWith(addr, clientID, username, password string, timeout time.Duration, clean bool, bufSize int) (*conn, error) {
	nc, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	c := &conn{nc: nc, r: bufio.NewReaderSize(nc, bufSize), w: bufio.NewWriterSize(nc, bufSize)}
	nc.SetDeadline(time.Now().Add(timeout))
	var body []byte
	body = appendString(body, "MQTT")
	flags := byte(0)
	if clean {
		flags |= 0x02
	}
	if username != "" {
		flags |= 0x80
	}
	if password != "" {
		flags |= 0x40
	}
	body = append(body, 4, flags, 0, 120)
	body = appendString(body, clientID)
	if username != "" {
		body = appendString(body, username)
	}
	if password != "" {
		body = appendString(body, password)
	}
	c.writePacket(0x10, body)
	if err := c.w.Flush(); err != nil {
		nc.Close()
		return nil, err
	}
	first, b, err := c.readPacket()
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("reading CONNACK: %w", err)
	}
	if typ := first >> 4; typ != typeConnack || len(b) != 2 {
		nc.Close()
		return nil, fmt.Errorf("expected CONNACK, got type %d", typ)
	}
	if b[1] != 0 {
		nc.Close()
		return nil, fmt.Errorf("%w: code %d", ErrRefused, b[1])
	}
	nc.SetDeadline(time.Time{})
	return c, nil
}

func (c *conn) writePacket(first byte, body []byte) {
	c.w.WriteByte(first)
	n := len(body)
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		c.w.WriteByte(b)
		if n == 0 {
			break
		}
	}
	c.w.Write(body)
}

// readPacket reads one packet: its first byte (type and flags) and its body.
func (c *conn) readPacket() (byte, []byte, error) {
	first, err := c.r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mult := 0, 1
	for i := 0; ; i++ {
		b, err := c.r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(b&0x7f) * mult
		if b&0x80 == 0 {
			break
		}
		if i == 3 {
			return 0, nil, errors.New("malformed remaining length")
		}
		mult *= 128
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return 0, nil, err
	}
	return first, body, nil
}

// subscribe subscribes to one filter and returns the SUBACK code.
func (c *conn) subscribe(filter string, qos byte) (byte, error) {
	body := []byte{0, 1}
	body = appendString(body, filter)
	body = append(body, qos)
	c.writePacket(0x82, body)
	if err := c.w.Flush(); err != nil {
		return 0, err
	}
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.nc.SetReadDeadline(time.Time{})
	for {
		first, b, err := c.readPacket()
		if err != nil {
			return 0, err
		}
		if first>>4 == typeSuback && len(b) == 3 {
			return b[2], nil
		}
	}
}

// publish buffers a PUBLISH; QoS 1 takes the next packet identifier.
func (c *conn) publish(topic string, qos byte, payload []byte) {
	body := appendString(make([]byte, 0, len(topic)+len(payload)+4), topic)
	first := byte(0x30)
	if qos == 1 {
		c.nextID++
		if c.nextID == 0 {
			c.nextID = 1
		}
		body = binary.BigEndian.AppendUint16(body, c.nextID)
		first |= 0x02
	}
	c.writePacket(first, append(body, payload...))
}

// ping sends PINGREQ and waits for PINGRESP, reading past anything else.
func (c *conn) ping() error {
	c.writePacket(0xC0, nil)
	if err := c.w.Flush(); err != nil {
		return err
	}
	c.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	defer c.nc.SetReadDeadline(time.Time{})
	for {
		first, _, err := c.readPacket()
		if err != nil {
			return err
		}
		if first>>4 == typePingresp {
			return nil
		}
	}
}

// puback answers a QoS 1 delivery, flushing when nothing more is buffered to read.
func (c *conn) puback(id uint16) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.writePacket(0x40, binary.BigEndian.AppendUint16(nil, id))
	if c.r.Buffered() == 0 {
		c.w.Flush()
	}
}

// publishInfo extracts the QoS and packet id of a delivered PUBLISH.
func publishInfo(first byte, body []byte) (qos byte, id uint16) {
	qos = (first >> 1) & 3
	if qos == 0 || len(body) < 2 {
		return qos, 0
	}
	tl := int(binary.BigEndian.Uint16(body))
	if len(body) < 2+tl+2 {
		return qos, 0
	}
	return qos, binary.BigEndian.Uint16(body[2+tl:])
}

// close sends DISCONNECT and closes without lingering (no TIME_WAIT pile-up
// in connect-rate loops).
func (c *conn) close() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.writePacket(0xE0, nil)
	c.w.Flush()
	if tc, ok := c.nc.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.nc.Close()
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}
