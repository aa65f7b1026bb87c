package broker

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/hook"
)

// chunkReader hands out its bytes in the sizes it is given, one Read each
// (a socket's arrivals), and then io.EOF.
type chunkReader struct {
	data   []byte
	chunks []int
	reads  int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	r.reads++
	n := len(r.data)
	if len(r.chunks) > 0 {
		n = min(n, r.chunks[0])
		r.chunks = r.chunks[1:]
	}
	n = copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// connectOf is a CONNECT packet whose remaining length is n (its body is
// filler: readConnect reads a packet, it does not decode it).
func connectOf(n int) []byte {
	pk := []byte{0x10}
	for v := n; ; {
		b := byte(v & 0x7f)
		v >>= 7
		if v > 0 {
			pk = append(pk, b|0x80)
			continue
		}
		pk = append(pk, b)
		break
	}
	for i := range n {
		pk = append(pk, byte(i))
	}
	return pk
}

// TestReadConnectArrivals: whatever sizes the bytes arrive in, readConnect
// returns the whole CONNECT and nothing but what arrived with it, and the
// bytes it returned followed by those still unread are the stream sent
// (the caller replays them to Mochi, so nothing may be lost or repeated).
func TestReadConnectArrivals(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 13, 14, 15, 16, 127, 128, 200, 16383, 16384, 70000} {
		for trial := range 40 {
			pk := connectOf(n)
			tail := bytes.Repeat([]byte{0x82}, rng.IntN(40)) // a pipelined SUBSCRIBE's first bytes, say
			stream := append(append([]byte{}, pk...), tail...)
			var chunks []int
			for range 50 {
				chunks = append(chunks, 1+rng.IntN(1+rng.IntN(len(stream))))
			}
			r := &chunkReader{data: stream, chunks: chunks}
			got, err := readConnect(r, 0)
			if err != nil {
				t.Fatalf("n=%d trial %d: %v", n, trial, err)
			}
			if len(got) < len(pk) || !bytes.Equal(got[:len(pk)], pk) {
				t.Fatalf("n=%d trial %d: returned %d bytes, not the %d-byte CONNECT", n, trial, len(got), len(pk))
			}
			if rest := append(append([]byte{}, got...), r.data...); !bytes.Equal(rest, stream) {
				t.Fatalf("n=%d trial %d: returned and unread bytes are not the stream", n, trial)
			}
		}
	}
}

// TestReadConnectReads: a CONNECT that arrived whole costs at most two
// reads however long it is (it was one per length byte, plus two).
func TestReadConnectReads(t *testing.T) {
	for _, n := range []int{10, 300, 20000} {
		r := &chunkReader{data: connectOf(n)}
		if _, err := readConnect(r, 0); err != nil {
			t.Fatal(err)
		}
		if want := min(2, 1+(n+3)/16); r.reads > want {
			t.Errorf("CONNECT of %d bytes: %d reads, want at most %d", n, r.reads, want)
		}
	}
}

func TestReadConnectRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stream []byte
		max    uint32
		want   string // in the error
		is     error  // or the error it is
	}{
		{"nothing", nil, 0, "", io.EOF},
		{"not a CONNECT", []byte{0x82, 0x05, 0, 1, 0, 0, 0}, 0, "type 8, not CONNECT", nil},
		{"CONNECT with flags", []byte{0x12, 0}, 0, "not CONNECT", nil},
		{"endless length", []byte{0x10, 0xff, 0xff, 0xff, 0xff, 0x01}, 0, "malformed remaining length", nil},
		{"over max_packet_size", connectOf(300), 200, "CONNECT of 300 bytes, over max_packet_size", nil},
		{"closed in the length", []byte{0x10, 0x80}, 0, "", io.EOF},
		{"closed in the body", connectOf(300)[:100], 0, "", io.ErrUnexpectedEOF},
		{"closed in the head", connectOf(300)[:10], 0, "", io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readConnect(&chunkReader{data: tc.stream, chunks: []int{1, 3, 7}}, tc.max)
			switch {
			case err == nil:
				t.Fatal("accepted")
			case tc.is != nil && !errors.Is(err, tc.is):
				t.Fatalf("err = %v, want %v", err, tc.is)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
		})
	}
}

// connectWithKeepAlive is a v3.1.1 CONNECT of client "k" with keep-alive ka.
func connectWithKeepAlive(ka uint16) []byte {
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, byte(ka >> 8), byte(ka), 0, 1, 'k'}
	return append([]byte{0x10, byte(len(body))}, body...)
}

func TestConnectKeepAlive(t *testing.T) {
	for _, ka := range []uint16{0, 1, 60, 65535} {
		if got, ok := connectKeepAlive(connectWithKeepAlive(ka)); !ok || got != ka {
			t.Errorf("keep-alive %d read as %d, %v", ka, got, ok)
		}
	}
	v5 := []byte{0x10, 0x80, 0x01, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 30} // a two-byte remaining length
	if got, ok := connectKeepAlive(v5); !ok || got != 30 {
		t.Errorf("two-byte length: %d, %v", got, ok)
	}
	for _, short := range [][]byte{{0x10}, {0x10, 0x05, 0, 4, 'M'}, {0x10, 10, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0}, {0x10, 0x80, 0x80, 0x80, 0x80}} {
		if _, ok := connectKeepAlive(short); ok {
			t.Errorf("%v: a keep-alive read from a packet too short for one", short)
		}
	}
}

// TCP keep-alive is on for exactly the connections whose CONNECT asks for
// no MQTT Keep Alive, on the sockets the broker's listeners accept.
func TestTCPKeepAliveOnlyWithoutMQTTKeepAlive(t *testing.T) {
	ln, err := mqttListenConfig.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &listener{id: "tcp", protocol: "tcp", ln: ln, connectTimeout: 5 * time.Second, log: slog.New(slog.DiscardHandler)}
	got := make(chan int, 1)
	go l.Serve(func(_ string, c net.Conn) error {
		raw := c.(*hook.Conn).Conn.(*prefixConn).Conn.(*limitedConn).Conn.(*net.TCPConn)
		sc, err := raw.SyscallConn()
		if err != nil {
			return err
		}
		v := -1
		_ = sc.Control(func(fd uintptr) { v, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE) })
		got <- v
		return nil
	})
	defer l.Close(func(string) {})
	for _, ka := range []uint16{0, 30} {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(connectWithKeepAlive(ka)); err != nil {
			t.Fatal(err)
		}
		select {
		case v := <-got:
			if want := map[bool]int{true: 1, false: 0}[ka == 0]; v != want {
				t.Errorf("MQTT keep-alive %d: SO_KEEPALIVE = %d, want %d", ka, v, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("connection not handed over")
		}
		c.Close()
	}
}
