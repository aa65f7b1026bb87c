package hook

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/tokenmq/tokenmq/tokenauth"
)

// Config configures a Hook. The token semantics are the Authority's; these
// are the Mochi adapter's own choices.
type Config struct {
	// DenyDisconnect disconnects a v3.1.1 client whose QoS 1/2 publish is
	// denied, instead of acknowledging and dropping it.
	DenyDisconnect bool
	// Backpressure: when a QoS 0 delivery is dropped because the
	// subscriber's queue is full, and that subscriber is reading at least
	// BackpressureMinRate packets/s, the publisher's connection pauses for
	// BackpressurePause, so that TCP slows the publisher down to what the
	// subscriber can take instead of the broker dropping the difference. A
	// stalled or slow reader (below the rate) slows no one: its messages are
	// dropped. BackpressurePause 0 turns this off.
	BackpressurePause   time.Duration
	BackpressureMinRate float64
	// Logger receives the hook's logs; never tokens. Default slog.Default().
	Logger *slog.Logger
}

// Hook is the Mochi adapter over a tokenauth.Authority. Register it alone:
// Mochi ORs the answers of hooks, so an allow-all hook beside it would open
// everything.
type Hook struct {
	mqtt.HookBase
	cfg    Config
	server *mqtt.Server
	auth   *tokenauth.Authority
	obs    tokenauth.Observer
	log    *slog.Logger

	clients sync.Map // *mqtt.Client -> *client

	stop      chan struct{}
	done      sync.WaitGroup
	startOnce sync.Once
	closeOnce sync.Once

	dropped atomic.Int64
}

var _ mqtt.Hook = (*Hook)(nil)

// New returns a Hook for server over auth. It does no I/O; Start begins
// its housekeeping.
func New(server *mqtt.Server, auth *tokenauth.Authority, cfg Config) (*Hook, error) {
	if server == nil || auth == nil {
		return nil, errors.New("hook: server and Authority are required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Hook{cfg: cfg, server: server, auth: auth, obs: auth.Observer(), log: log, stop: make(chan struct{})}, nil
}

// ID implements mqtt.Hook.
func (h *Hook) ID() string { return "tokenmq-auth" }

// Provides implements mqtt.Hook: exactly the events the hook handles.
func (h *Hook) Provides(b byte) bool { return provided[b] }

// provided is what Provides answers: Mochi asks it before every hook call,
// several times per delivery, so it is a table.
var provided = func() (t [256]bool) {
	for _, e := range []byte{
		mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnSessionEstablished, mqtt.OnDisconnect,
		mqtt.OnACLCheck, mqtt.OnPublish, mqtt.OnPacketRead, mqtt.OnWill,
		mqtt.OnPacketSent, mqtt.OnPublishDropped, mqtt.OnAuthPacket,
	} {
		t[e] = true
	}
	return t
}()

// Start begins sweeping connections that died without Mochi reporting it.
func (h *Hook) Start() {
	h.startOnce.Do(func() {
		h.done.Add(1)
		go h.sweep()
	})
}

// Close stops the sweep. The Authority is closed by its owner.
func (h *Hook) Close() {
	h.closeOnce.Do(func() {
		close(h.stop)
		h.done.Wait()
	})
}

// Sessions returns the number of authenticated connections.
func (h *Hook) Sessions() int {
	n := 0
	h.clients.Range(func(_, _ any) bool { n++; return true })
	return n
}

// Dropped returns how many deliveries Mochi dropped for full queues.
func (h *Hook) Dropped() int64 { return h.dropped.Load() }

// sweep forgets connections whose socket died without Mochi reporting it
// (a failure between CONNECT and CONNACK).
func (h *Hook) sweep() {
	defer h.done.Done()
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
			h.sweepOnce()
		}
	}
}

func (h *Hook) sweepOnce() {
	h.clients.Range(func(k, _ any) bool {
		if cl := k.(*mqtt.Client); cl.Closed() {
			h.forget(cl)
		}
		return true
	})
}
