package e2e

import (
	"bufio"
	bin "encoding/binary"
	"fmt"
	"io"
	"net"
	"time"
)

// rawConnect opens a connection and sends an MQTT 3.1.1 CONNECT by hand,
// returning the CONNACK return code: a client cheap enough to open
// thousands of at once, which is not the bottleneck of the test.
func rawConnect(addr, clientID, username, password string, timeout time.Duration) (byte, net.Conn, error) {
	var conn net.Conn
	var err error
	deadline := time.Now().Add(timeout)
	for {
		conn, err = net.DialTimeout("tcp", addr, time.Until(deadline))
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // a full accept backlog: try again
	}
	if err != nil {
		return 0, nil, err
	}
	conn.SetDeadline(deadline)
	var body []byte
	body = appendString(body, "MQTT")
	flags := byte(0x02) // clean session
	if username != "" {
		flags |= 0x80
	}
	if password != "" {
		flags |= 0x40
	}
	body = append(body, 4, flags, 0, 60) // level 4, flags, keep-alive 60 s
	body = appendString(body, clientID)
	if username != "" {
		body = appendString(body, username)
	}
	if password != "" {
		body = appendString(body, password)
	}
	pkt := append([]byte{0x10}, remainingLength(len(body))...)
	if _, err := conn.Write(append(pkt, body...)); err != nil {
		conn.Close()
		return 0, nil, err
	}
	var ack [4]byte
	if _, err := io.ReadFull(bufio.NewReader(conn), ack[:]); err != nil {
		conn.Close()
		return 0, nil, fmt.Errorf("reading CONNACK: %w", err)
	}
	if ack[0] != 0x20 || ack[1] != 2 {
		conn.Close()
		return 0, nil, fmt.Errorf("not a CONNACK: % x", ack)
	}
	conn.SetDeadline(time.Time{})
	return ack[3], conn, nil
}

// rawDisconnect sends DISCONNECT and closes.
func rawDisconnect(conn net.Conn) {
	conn.Write([]byte{0xE0, 0})
	conn.Close()
}

func appendString(b []byte, s string) []byte {
	b = bin.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func remainingLength(n int) []byte {
	var out []byte
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		out = append(out, b)
		if n == 0 {
			return out
		}
	}
}

// rawConnectEmptyPassword sends a CONNECT of protocol level v (4 or 5)
// with the password flag set and a zero-length password, and returns the
// CONNACK's code.
func rawConnectEmptyPassword(addr string, v byte) (byte, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	var body []byte
	body = appendString(body, "MQTT")
	body = append(body, v, 0xC2, 0, 60) // username, password, clean
	if v == 5 {
		body = append(body, 0) // no properties
	}
	body = appendString(body, "empty-password")
	body = appendString(body, "d")
	body = appendString(body, "")
	pkt := append([]byte{0x10}, remainingLength(len(body))...)
	if _, err := conn.Write(append(pkt, body...)); err != nil {
		return 0, err
	}
	r := bufio.NewReader(conn)
	first, err := r.ReadByte()
	if err != nil || first != 0x20 {
		return 0, fmt.Errorf("no CONNACK (%x, %v)", first, err)
	}
	n, _ := r.ReadByte()
	ack := make([]byte, n)
	if _, err := io.ReadFull(r, ack); err != nil || n < 2 {
		return 0, fmt.Errorf("short CONNACK: %v", err)
	}
	return ack[1], nil
}
