package broker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
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
type listener struct {
	id             string
	protocol       string
	ln             net.Listener
	connectTimeout time.Duration
	log            *slog.Logger
	ws             *http.Server // for protocol "ws"

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{} // raw connections being served
	wg     sync.WaitGroup        // goroutines serving them
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
	if l.protocol == "ws" {
		l.serveWebsocket(establish)
		return
	}
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			return
		}
		if !l.track(conn) {
			conn.Close()
			return
		}
		go func() {
			defer l.untrack(conn)
			l.establish(establish, conn, conn)
		}()
	}
}

// establish hands a connection to Mochi with a deadline for its CONNECT;
// Mochi replaces the deadline with the keep-alive one once CONNECT is read.
// The connection is wrapped with a slot for the auth hook's session.
func (l *listener) establish(establish listeners.EstablishFn, conn net.Conn, deadlined net.Conn) {
	_ = deadlined.SetDeadline(time.Now().Add(l.connectTimeout))
	if err := establish(l.id, hook.WrapConn(conn)); err != nil && !errors.Is(err, io.EOF) {
		l.log.Debug("connection ended", "listener", l.id, "remote", conn.RemoteAddr().String(), "err", err)
	}
}

func (l *listener) serveWebsocket(establish listeners.EstablishFn) {
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
	l.ws = &http.Server{Handler: mux, ReadHeaderTimeout: l.connectTimeout}
	srv := l.ws
	l.mu.Unlock()
	if err := srv.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
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
