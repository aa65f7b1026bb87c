package broker

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/tokenmq/tokenmq/hook"
)

// listener is a Mochi listener over a socket tokenmq binds itself, so that
// Start knows the bound address (":0" in tests) before serving, and so that
// a connection that sends no CONNECT is closed after connectTimeout (Mochi
// would wait for it forever). It tracks its connections so that Close
// returns only when none is still being handed to Mochi: Mochi's Close
// waits on a WaitGroup that a connection arriving during it would Add to.
//
// It survives hostile clients and bad luck (SPEC §3.8): an Accept error
// that is temporary (no descriptors left, an aborted connection) is
// retried with backoff, logged (at most every 10 s) and counted, and the
// process reports not ready while it lasts; the process's connections are
// capped (limit) below its descriptor limit, so that the API, the stores
// and outbound calls keep theirs; and until its CONNECT is read a
// connection costs only a goroutine and the bytes it has sent — Mochi's
// per-client queues and buffers come after.
type listener struct {
	id             string
	protocol       string
	ln             net.Listener
	connectTimeout time.Duration
	maxPacket      uint32
	limit          *connLimit
	log            *slog.Logger
	ws             *http.Server // for protocol "ws"

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{} // raw connections being served
	wg     sync.WaitGroup        // goroutines serving them

	acceptErrors atomic.Int64
	lastError    atomic.Int64 // Unix nanoseconds of the last Accept error
	dead         atomic.Bool  // Accept failed for good
	logMu        sync.Mutex
	loggedAt     time.Time
	unlogged     int
}

// connLimit caps the connections of a process (broker.max_connections).
type connLimit struct {
	max     int64
	open    atomic.Int64
	refused atomic.Int64
}

func (c *connLimit) acquire() bool {
	if c == nil || c.max <= 0 {
		return true
	}
	if c.open.Add(1) > c.max {
		c.open.Add(-1)
		c.refused.Add(1)
		return false
	}
	return true
}

func (c *connLimit) release() {
	if c != nil && c.max > 0 {
		c.open.Add(-1)
	}
}

// healthy reports whether the listener accepts: it has not failed for good
// and had no Accept error in the last two seconds.
func (l *listener) healthy() bool {
	last := l.lastError.Load()
	return !l.dead.Load() && (last == 0 || time.Since(time.Unix(0, last)) > 2*time.Second)
}

// temporaryAccept reports an Accept error worth retrying: out of
// descriptors or memory, or a connection aborted before it was accepted.
func temporaryAccept(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ECONNABORTED, syscall.ENOBUFS, syscall.ENOMEM, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// acceptFailed records an Accept error, logging at most one line per 10 s.
func (l *listener) acceptFailed(err error) {
	l.acceptErrors.Add(1)
	l.lastError.Store(time.Now().UnixNano())
	l.logMu.Lock()
	defer l.logMu.Unlock()
	if time.Since(l.loggedAt) < 10*time.Second {
		l.unlogged++
		return
	}
	l.log.Warn("listener cannot accept; retrying", "listener", l.id, "err", err, "since_last_line", l.unlogged)
	l.loggedAt, l.unlogged = time.Now(), 0
}

// guardedListener is what the listener serves from: Accept records errors
// for the caller to retry, and refuses (closes at once) a connection past
// the process's limit.
type guardedListener struct {
	net.Listener
	l *listener
}

func (g guardedListener) Accept() (net.Conn, error) {
	for {
		c, err := g.Listener.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				g.l.acceptFailed(err)
			}
			return nil, err
		}
		if !g.l.limit.acquire() {
			c.Close()
			continue
		}
		return &limitedConn{Conn: c, limit: g.l.limit}, nil
	}
}

// limitedConn gives its place under the limit back when it closes.
type limitedConn struct {
	net.Conn
	limit *connLimit
	once  sync.Once
}

func (c *limitedConn) Close() error {
	c.once.Do(c.limit.release)
	return c.Conn.Close()
}

// track registers a connection being served; false if the listener closed.
func (l *listener) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	if l.conns == nil {
		l.conns = make(map[net.Conn]struct{})
	}
	l.conns[c] = struct{}{}
	l.wg.Add(1)
	return true
}

func (l *listener) untrack(c net.Conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
	l.wg.Done()
}

var _ listeners.Listener = (*listener)(nil)

func (l *listener) ID() string       { return l.id }
func (l *listener) Address() string  { return l.ln.Addr().String() }
func (l *listener) Protocol() string { return l.protocol }

// Init implements listeners.Listener; the socket is already bound.
func (l *listener) Init(*slog.Logger) error { return nil }

// Serve accepts connections until Close.
func (l *listener) Serve(establish listeners.EstablishFn) {
	ln := guardedListener{l.ln, l}
	if l.protocol == "ws" {
		l.serveWebsocket(establish, ln)
		return
	}
	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if l.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			if !temporaryAccept(err) {
				l.dead.Store(true)
				l.log.Error("listener stopped accepting", "listener", l.id, "err", err)
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second) // as net/http's Server.Serve
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if !l.track(conn) {
			conn.Close()
			return
		}
		go func() {
			defer l.untrack(conn)
			defer conn.Close()
			l.establish(establish, conn, conn)
		}()
	}
}

func (l *listener) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// establish reads the connection's CONNECT within connectTimeout, then
// hands the connection to Mochi, which reads the CONNECT again from what
// was buffered; Mochi replaces the deadline with the keep-alive one. The
// connection is wrapped with a slot for the auth hook's session.
func (l *listener) establish(establish listeners.EstablishFn, conn net.Conn, deadlined net.Conn) {
	_ = deadlined.SetDeadline(time.Now().Add(l.connectTimeout))
	first, err := readConnect(conn, l.maxPacket)
	if err != nil {
		l.log.Debug("connection closed before its CONNECT", "listener", l.id, "remote", conn.RemoteAddr().String(), "err", err)
		return
	}
	if ka, ok := connectKeepAlive(first); ok && ka == 0 {
		keepTCPAlive(deadlined)
	}
	if err := establish(l.id, hook.WrapConn(&prefixConn{Conn: conn, pending: first})); err != nil && !errors.Is(err, io.EOF) {
		l.log.Debug("connection ended", "listener", l.id, "remote", conn.RemoteAddr().String(), "err", err)
	}
}

// The MQTT listeners do not turn TCP keep-alive on for every connection
// (net.ListenConfig's default does, with four setsockopt calls: 6 % of a
// connect's CPU): a client's MQTT Keep Alive already bounds how long a
// dead peer holds its connection (Mochi closes it after 1.5 times the
// interval without a packet), as in Mosquitto, which sets no TCP
// keep-alive. A client that asks for none (Keep Alive 0) gets TCP's, with
// Go's default probes, so that a peer that vanished is still noticed.
var mqttListenConfig = net.ListenConfig{KeepAlive: -1}

// connectKeepAlive returns the Keep Alive of a CONNECT packet as
// readConnect returns it; false if the packet is too short to have one
// (Mochi refuses it).
func connectKeepAlive(pk []byte) (uint16, bool) {
	i := 1
	for i < len(pk) && i < 4 && pk[i]&0x80 != 0 { // the remaining length's bytes
		i++
	}
	i++
	if i+2 > len(pk) {
		return 0, false
	}
	i += 2 + int(binary.BigEndian.Uint16(pk[i:])) + 2 // protocol name, level, flags
	if i+2 > len(pk) {
		return 0, false
	}
	return binary.BigEndian.Uint16(pk[i:]), true
}

// keepTCPAlive turns TCP keep-alive on for c's socket, if it has one.
func keepTCPAlive(c net.Conn) {
	for {
		switch v := c.(type) {
		case *net.TCPConn:
			_ = v.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true}) // Go's default idle time, interval and count
			return
		case *limitedConn:
			c = v.Conn
		case *tls.Conn:
			c = v.NetConn()
		default:
			return
		}
	}
}

// readConnect reads one MQTT packet that must be a CONNECT of at most max
// bytes, and returns it with whatever arrived behind it in the same reads
// (the caller replays all of it). A socket still waiting holds a 16-byte
// buffer; the CONNECT's own buffer is allocated, at its exact size, once
// its length is known. Usually two reads: the head, then the rest.
func readConnect(r io.Reader, max uint32) ([]byte, error) {
	head := make([]byte, 16)
	got, err := io.ReadAtLeast(r, head, 1)
	if err != nil {
		return nil, err
	}
	if head[0] != 0x10 {
		return nil, fmt.Errorf("first packet of type %d, not CONNECT", head[0]>>4)
	}
	n, mult, i := 0, 1, 1 // remaining length, its varint's multiplier, the byte being read
	for ; ; i++ {
		if i == 5 {
			return nil, errors.New("malformed remaining length")
		}
		if i == got {
			m, err := io.ReadAtLeast(r, head[got:], 1)
			if err != nil {
				return nil, err
			}
			got += m
		}
		n += int(head[i]&0x7f) * mult
		mult *= 128
		if head[i]&0x80 == 0 {
			break
		}
	}
	if max > 0 && uint32(n) > max {
		return nil, fmt.Errorf("CONNECT of %d bytes, over max_packet_size", n)
	}
	total := i + 1 + n
	if total <= got {
		return head[:got], nil
	}
	buf := make([]byte, total)
	copy(buf, head[:got])
	if _, err := io.ReadFull(r, buf[got:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}

// prefixConn replays the bytes read before Mochi took the connection.
type prefixConn struct {
	net.Conn
	pending []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		if len(c.pending) == 0 {
			c.pending = nil
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

func (l *listener) serveWebsocket(establish listeners.EstablishFn, ln net.Listener) {
	upgrader := websocket.Upgrader{
		Subprotocols: []string{"mqtt"},
		CheckOrigin:  func(*http.Request) bool { return true }, // token auth, not cookies
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/mqtt", func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		raw := c.UnderlyingConn()
		if !l.track(raw) {
			return
		}
		defer l.untrack(raw)
		l.establish(establish, &wsConn{Conn: raw, c: c}, raw)
	})
	l.mu.Lock()
	l.ws = &http.Server{Handler: mux, ReadHeaderTimeout: l.connectTimeout, ErrorLog: slog.NewLogLogger(l.log.Handler(), slog.LevelDebug)}
	srv := l.ws
	l.mu.Unlock()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		l.dead.Store(true)
		l.log.Error("websocket listener stopped", "err", err)
	}
}

// Close stops accepting, has Mochi disconnect this listener's clients (0x8B),
// closes the connections still short of a session, and waits until every
// connection has left Mochi.
func (l *listener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	ws := l.ws
	l.mu.Unlock()
	if ws != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = ws.Shutdown(ctx) // hijacked websocket connections are not waited for
		cancel()
	} else {
		_ = l.ln.Close()
	}
	closeClients(l.id)
	l.mu.Lock()
	for c := range l.conns {
		_ = c.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
}

// wsConn is a net.Conn over a websocket: MQTT packets in binary messages.
type wsConn struct {
	net.Conn
	c *websocket.Conn
	r io.Reader
}

func (ws *wsConn) Read(p []byte) (int, error) {
	for {
		if ws.r == nil {
			op, r, err := ws.c.NextReader()
			if err != nil {
				return 0, err
			}
			if op != websocket.BinaryMessage {
				return 0, errors.New("websocket: MQTT needs binary messages")
			}
			ws.r = r
		}
		n, err := ws.r.Read(p)
		if errors.Is(err, io.EOF) {
			ws.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (ws *wsConn) Write(p []byte) (int, error) {
	if err := ws.c.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (ws *wsConn) Close() error { return ws.c.Close() }
