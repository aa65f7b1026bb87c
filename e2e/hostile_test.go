package e2e

import (
	"bufio"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/tokenmq/tokenmq/config"
	"github.com/tokenmq/tokenmq/internal/testkit"
)

// goroutinesSettle waits until the goroutine count is back to baseline
// (plus slack for the runtime's own), and fails the test if it is not.
func goroutinesSettle(t *testing.T, baseline, slack int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= baseline+slack {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines, baseline %d: leaked\n%s", n, baseline, buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rawSubscribe sends an MQTT 3.1.1 SUBSCRIBE of one filter (bytes as given,
// no client-side validation) and returns the SUBACK code, or closed=true if
// the broker ended the connection instead.
func rawSubscribe(t testing.TB, conn net.Conn, filter string) (code byte, closed bool) {
	t.Helper()
	body := []byte{0, 1}
	body = appendString(body, filter)
	body = append(body, 1)
	pkt := append([]byte{0x82}, remainingLength(len(body))...)
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(append(pkt, body...)); err != nil {
		return 0, true
	}
	var ack [5]byte
	if _, err := io.ReadFull(bufio.NewReader(conn), ack[:]); err != nil {
		return 0, true
	}
	if ack[0] != 0x90 {
		t.Fatalf("not a SUBACK: % x", ack)
	}
	return ack[4], false
}

// waitConnClosed reports whether the broker closes conn within timeout.
func waitConnClosed(conn net.Conn, timeout time.Duration) bool {
	conn.SetReadDeadline(time.Now().Add(timeout))
	_, err := io.Copy(io.Discard, conn)
	ne, isNet := err.(net.Error)
	return err == nil || !(isNet && ne.Timeout()) // EOF or reset: closed; a timeout: still open
}

// ISSUE 4 — hostile MQTT input: each answered per SPEC, no panic, and the
// goroutine count back to baseline afterwards.
func TestHostileMQTTInput(t *testing.T) {
	e := startEnv(t, func(c *config.Config) {
		c.Broker.ConnectTimeout = 300 * time.Millisecond
		c.Broker.MaxPacketSize = 64 << 10
	})
	tok := e.apply("a/+,s/#", "R,W", time.Hour)
	// Warm up: the first connection starts lazily created goroutines.
	if code, c, err := rawConnect(e.mqtt, "warm", "d", tok, 5*time.Second); err != nil || code != 0 {
		t.Fatalf("warm-up: %d %v", code, err)
	} else {
		rawDisconnect(c)
	}
	testkit.WaitFor(t, 5*time.Second, "the warm-up connection to end", func() bool { return e.srv.Hook().Sessions() == 0 })
	baseline := runtime.NumGoroutine()

	t.Run("silent sockets", func(t *testing.T) {
		var conns []net.Conn
		for range 20 {
			c, err := net.Dial("tcp", e.mqtt)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		for _, c := range conns {
			if !waitConnClosed(c, 5*time.Second) {
				t.Fatal("a socket that sent nothing is still open")
			}
			c.Close()
		}
	})
	t.Run("malformed credentials", func(t *testing.T) {
		for _, cred := range [][2]string{
			{"Token|||", "R|" + tok}, {"Token|a|b|c", "RW|" + tok}, {"d", "|"}, {"d", "R|"}, {"Token|AK|mqtt-local", "R|R|R"},
			{"d", strings.Repeat("A", 60<<10)}, // a 60 KiB password
			{"d", "\xff\xfe\x00binary"}, {strings.Repeat("u", 60<<10), tok[:10]},
		} {
			code, c, err := rawConnect(e.mqtt, "bad-cred", cred[0], cred[1], 5*time.Second)
			if err == nil {
				c.Close()
			}
			if err == nil && code != 4 {
				t.Errorf("credentials %.20q/%.20q: CONNACK %d, want 4", cred[0], cred[1], code)
			}
		}
	})
	t.Run("oversized packet", func(t *testing.T) {
		code, c, err := rawConnect(e.mqtt, "big", "d", tok, 5*time.Second)
		if err != nil || code != 0 {
			t.Fatalf("connect: %d %v", code, err)
		}
		defer c.Close()
		payload := make([]byte, 100<<10) // over the 64 KiB maximum
		body := appendString(nil, "a/b")
		body = append(body, payload...)
		c.Write(append(append([]byte{0x30}, remainingLength(len(body))...), body...))
		if !waitConnClosed(c, 5*time.Second) {
			t.Fatal("an oversized packet did not end the connection")
		}
	})
	t.Run("odd topic filters", func(t *testing.T) {
		for _, tc := range []struct {
			filter  string
			granted bool
		}{
			{"a/x", true}, {"$share/g/a/+", true}, {"$SHARE/g/s/#", true},
			{"a/#/b", false}, {"a+", false}, {"+#", false}, {"#/", false}, {"a/#", false},
			{"$share/g", false}, {"$share/+/a/x", false}, {"$share/g/#", false}, {"$share//", false},
			{"a/\x00", false}, {"", false}, {"\xff\xfe", false}, {strings.Repeat("a/", 5000) + "#", false},
		} {
			code, c, err := rawConnect(e.mqtt, "subs", "d", tok, 5*time.Second)
			if err != nil || code != 0 {
				t.Fatalf("connect: %d %v", code, err)
			}
			got, closed := rawSubscribe(t, c, tc.filter)
			c.Close()
			if granted := !closed && got <= 2; granted != tc.granted {
				t.Errorf("subscribe %.30q: SUBACK 0x%02x (closed %v), granted %v, want %v", tc.filter, got, closed, granted, tc.granted)
			}
		}
	})
	t.Run("garbage after CONNECT", func(t *testing.T) {
		for _, junk := range [][]byte{
			{0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, // bad type and an endless length
			{0x10, 0x00},                   // a second CONNECT
			{0x30, 0x03, 0x00, 0x10, 'a'},  // a PUBLISH whose topic length runs past the packet
			{0x82, 0x02, 0x00, 0x01},       // a SUBSCRIBE with no filter
		} {
			code, c, err := rawConnect(e.mqtt, "junk", "d", tok, 5*time.Second)
			if err != nil || code != 0 {
				t.Fatalf("connect: %d %v", code, err)
			}
			c.Write(junk)
			if !waitConnClosed(c, 5*time.Second) {
				t.Errorf("junk % x did not end the connection", junk)
			}
			c.Close()
		}
	})
	t.Run("publishes to reserved and forbidden topics", func(t *testing.T) {
		c := mustConnect5(t, e.mqtt, "pub", "d", tok)
		for _, topic := range []string{"$SYS/broker/clients/connected", "$share/g/a/x", "b/x"} {
			if code := c.publish(topic, 1, false, "x"); code != 0x87 {
				t.Errorf("publish to %s: 0x%02x, want 0x87", topic, code)
			}
		}
		c.c.Disconnect(&paho.Disconnect{})
	})

	// The broker still serves a well-behaved client, and nothing leaked.
	ok := mustConnect5(t, e.mqtt, "after", "d", tok)
	if code := ok.subscribe("a/+", 1); code != 1 {
		t.Fatalf("subscribe after the hostile input: 0x%02x", code)
	}
	ok.c.Disconnect(&paho.Disconnect{})
	goroutinesSettle(t, baseline, 3)
}
