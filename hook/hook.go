package hook

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/tokenmq/tokenmq/sessionstore"
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
	// MaxTopicLevels bounds the levels of a topic or filter a client sends
	// (SPEC §3.8). Default 64.
	MaxTopicLevels int
	// MaxSubscriptions bounds a connection's subscriptions. Default 1000.
	MaxSubscriptions int
	// MaxQueued bounds the messages queued (and in flight) for an offline
	// persistent session; past it, new ones are dropped and counted.
	// Default 1000.
	MaxQueued int
	// Store keeps persistent sessions, their subscriptions, queued and
	// in-flight messages and retained messages on disk (SPEC §3.6). Nil
	// keeps them in memory.
	Store *sessionstore.Store
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
	provide [256]provision

	// Persistent sessions: how many there are (online or parked; with none,
	// publishes skip the offline-queue work), tickets of publishes whose
	// durable records are written, sessions read back at start, and a
	// sequence for in-memory ordering.
	persistent atomic.Int64
	parkedN    atomic.Int64
	tickets    sync.Map     // uint64 -> *ticket
	ticketsN   atomic.Int64 // entries in tickets
	// connacks counts the clients the hook knows whose CONNACK it has not
	// seen yet: OnPacketSent is needed only for those.
	connacks      atomic.Int64
	ticketSeq     atomic.Uint64
	memSeq        atomic.Uint64
	restoreMu     sync.Mutex
	restored      map[string]*restoredSession
	restoredState sessionstore.State
	wills         sync.Map     // client ID -> *pendingWill (delayed Wills)
	willer        *mqtt.Client // the inline client delayed Wills are published by

	queued, droppedFull, droppedResume, expired atomic.Int64

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
	if cfg.MaxQueued <= 0 {
		cfg.MaxQueued = 1000
	}
	if cfg.MaxTopicLevels <= 0 {
		cfg.MaxTopicLevels = 64
	}
	if cfg.MaxSubscriptions <= 0 {
		cfg.MaxSubscriptions = 1000
	}
	h := &Hook{cfg: cfg, server: server, auth: auth, obs: auth.Observer(), log: log, stop: make(chan struct{})}
	h.willer = server.NewClient(nil, "local", "$tokenmq-will", true)
	for _, e := range provided {
		h.provide[e] = always
	}
	if cfg.Store != nil {
		for _, e := range providedWithStore {
			h.provide[e] = always
		}
	}
	for _, e := range []byte{mqtt.OnQosPublish, mqtt.OnQosComplete, mqtt.OnQosDropped} {
		h.provide[e] = whilePersistent
	}
	for _, e := range []byte{mqtt.OnSelectSubscribers, mqtt.OnPublished} {
		h.provide[e] = whileTickets
	}
	h.provide[mqtt.OnPacketSent] = whileConnacks
	return h, nil
}

// ID implements mqtt.Hook.
func (h *Hook) ID() string { return "tokenmq-auth" }

// Provides implements mqtt.Hook: exactly the events the hook handles
// (Mochi asks before every hook call, several times per delivery, so it is
// a table). Some are needed only while there is something for them to do,
// and Mochi (the fork) skips them, and the packet copies their calls
// make, while there is not:
//   - OnQosPublish, OnQosComplete, OnQosDropped index the deliveries of
//     persistent sessions, so only while one exists (it is counted before
//     its CONNACK, so before anything can be delivered to it, and until
//     the hook forgets it);
//   - OnSelectSubscribers and OnPublished find a publish's ticket, so only
//     while a ticket exists (counted before OnPublish returns it);
//   - OnPacketSent sees CONNACKs, so only while a client the hook knows
//     has not had its CONNACK (counted before Mochi writes it; a CONNACK
//     never written is uncounted when the client is forgotten). The drain
//     rate of QoS 0 backpressure is Mochi's per-client packet count.
//
// A count that is wrong can only be too high, which costs a call.
func (h *Hook) Provides(b byte) bool {
	switch h.provide[b] {
	case always:
		return true
	case whilePersistent:
		return h.persistent.Load() > 0
	case whileTickets:
		return h.ticketsN.Load() > 0
	case whileConnacks:
		return h.connacks.Load() > 0
	}
	return false
}

// provision is when the hook handles an event.
type provision uint8

const (
	never provision = iota
	always
	whilePersistent
	whileTickets
	whileConnacks
)

// provided are the events the hook always handles; providedWithStore the
// ones it handles to keep the broker's state on disk. New adds those it
// handles only at times (Provides).
var (
	provided = []byte{
		mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnSessionEstablish, mqtt.OnSessionEstablished, mqtt.OnDisconnect,
		mqtt.OnACLCheck, mqtt.OnPublish, mqtt.OnPacketRead, mqtt.OnWill,
		mqtt.OnPublishDropped, mqtt.OnAuthPacket, mqtt.OnClientExpired,
	}
	providedWithStore = []byte{
		mqtt.OnSubscribed, mqtt.OnUnsubscribed, mqtt.OnRetainMessage, mqtt.OnRetainedExpired,
		mqtt.StoredClients, mqtt.StoredSubscriptions, mqtt.StoredInflightMessages, mqtt.StoredRetainedMessages,
	}
)

// Start begins sweeping connections that died without Mochi reporting it.
func (h *Hook) Start() {
	h.startOnce.Do(func() {
		h.done.Add(1)
		go h.sweep()
	})
}

// Close stops the sweep and the timers of delayed Wills. The Authority is
// closed by its owner.
func (h *Hook) Close() {
	h.closeOnce.Do(func() {
		close(h.stop)
		h.done.Wait()
		h.wills.Range(func(k, v any) bool {
			v.(*pendingWill).t.Stop()
			h.wills.Delete(k)
			return true
		})
	})
}

// Sessions returns the number of authenticated connections (not the
// offline persistent sessions: QueueStats counts those).
func (h *Hook) Sessions() int {
	n := 0
	h.clients.Range(func(_, v any) bool {
		if !v.(*client).parked.Load() {
			n++
		}
		return true
	})
	return n
}

// Dropped returns how many deliveries Mochi dropped for full queues.
func (h *Hook) Dropped() int64 { return h.dropped.Load() }

// QueueStats counts what happened to persistent sessions' messages.
type QueueStats struct {
	Queued          int64 // messages queued for offline sessions
	DroppedFull     int64 // not queued: the session's queue was full
	DroppedOnResume int64 // queued or in flight, discarded at resume: the new connection's token does not cover them
	ExpiredSessions int64 // offline sessions discarded at their expiry
	Offline         int64 // persistent sessions offline now
}

// QueueStats returns the counters so far.
func (h *Hook) QueueStats() QueueStats {
	return QueueStats{Queued: h.queued.Load(), DroppedFull: h.droppedFull.Load(), DroppedOnResume: h.droppedResume.Load(),
		ExpiredSessions: h.expired.Load(), Offline: h.parkedN.Load()}
}

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

// sweepOnce forgets closed connections, except parked persistent sessions
// that are still the server's client for their ID.
func (h *Hook) sweepOnce() {
	h.clients.Range(func(k, v any) bool {
		cl, c := k.(*mqtt.Client), v.(*client)
		if !cl.Closed() {
			return true
		}
		if c.parked.Load() {
			if cur, ok := h.server.Clients.Get(cl.ID); ok && cur == cl {
				return true
			}
		}
		h.forget(cl)
		return true
	})
}
