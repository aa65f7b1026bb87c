package hook

import (
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tokenmq/tokenmq/sessionstore"
	"github.com/tokenmq/tokenmq/tokenauth"
)

// client is one authenticated Mochi connection: its core session, and what
// the Mochi adapter itself needs (the drain rate, for QoS 0 backpressure).
// It is the core's tokenauth.Client for this connection. It is keyed by
// *mqtt.Client, never by client ID: a takeover makes a new one.
type client struct {
	*tokenauth.Session
	h  *Hook
	cl *mqtt.Client

	// Delivery progress, for QoS 0 backpressure: a snapshot of the count
	// of packets written to the client, to measure its drain rate.
	drainMu     sync.Mutex
	drainAt     time.Time
	drainCount  int64
	drainPerSec float64

	// A persistent session (SPEC §3.6) outlives its connection: parked is
	// set while the client is offline, and qmu guards the index of the
	// messages in flight or queued for it (packet ID -> message), which
	// orders a resumed session's queue, gives an alias-only packet its
	// topic back and names the message's durable record.
	persistent bool
	parked     atomic.Bool
	// awaitingConnack: counted in the hook's connacks until its CONNACK is
	// written or the client is forgotten.
	awaitingConnack atomic.Bool
	connectedAt     int64 // Unix ms: when the connection that last used the session started
	qmu             sync.Mutex
	queue           map[uint16]msgRef
	// A takeover or resume in progress: the client that takes this one's
	// session over (guarded by qmu), and on that one, the client it takes
	// over until its CONNACK is out.
	supersededBy *client
	supersedes   *mqtt.Client
	// Deliveries passed on to this client before its CONNACK was out, and
	// whether it is out (queue.go, passOn); guarded by qmu.
	passed  []passed
	adopted bool
	// reserved counts records written for this session whose delivery
	// Mochi has not made yet: places taken in its queue.
	reserved atomic.Int32

	// Publishes of this client held until their records are on disk (hold.go).
	holdMu    sync.Mutex
	held      []held
	heldN     atomic.Int32 // len(held), for holding()
	releasing bool
}

// msgRef is a message in flight or queued for a persistent session.
type msgRef struct {
	seq    uint64 // order of arrival; the durable record's key
	topic  string
	expiry int64 // Unix seconds; 0: none
}

var _ tokenauth.Client = (*client)(nil)

// Notify implements tokenauth.Client: a QoS 0 PUBLISH to this client
// only, bypassing routing.
func (c *client) Notify(n tokenauth.Notice) {
	var props []packets.UserProperty
	for _, p := range n.Properties {
		props = append(props, packets.UserProperty{Key: p.Key, Val: p.Value})
	}
	_ = c.cl.WritePacket(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish},
		TopicName:   n.Topic,
		Payload:     n.Payload,
		Properties:  packets.Properties{User: props},
	})
}

// Disconnect implements tokenauth.Client: DISCONNECT with the cause's
// reason for MQTT 5 (3.1.1 has no server DISCONNECT: the socket closes).
func (c *client) Disconnect(cause tokenauth.Cause) {
	if cause == tokenauth.CauseKicked {
		c.cl.DiscardSession() // KickClient: the session goes with the connection
	}
	code := mochiCode(cause.Reason())
	if c.cl.Properties.ProtocolVersion >= 5 {
		_ = c.h.server.DisconnectClient(c.cl, code)
	} else {
		c.cl.Stop(code)
	}
}

// Close implements tokenauth.Client: the socket closes under its writer.
func (c *client) Close(cause tokenauth.Cause) {
	if cause == tokenauth.CauseKicked {
		c.cl.DiscardSession()
	}
	c.cl.Stop(mochiCode(cause.Reason()))
}

// Restrict implements tokenauth.Client: the subscriptions r does not cover
// are removed from the client and from Mochi's topic tree.
func (c *client) Restrict(r *tokenauth.Rights) {
	for filter := range c.cl.State.Subscriptions.GetAll() {
		if r.Readable(filter) {
			continue
		}
		if c.h.server.Topics.Unsubscribe(filter, c.cl.ID) {
			atomic.AddInt64(&c.h.server.Info.Subscriptions, -1)
		}
		c.cl.State.Subscriptions.Delete(filter)
		if c.persistent && c.h.cfg.Store != nil {
			c.h.cfg.Store.WriteAsync(sessionstore.DeleteSubscription(c.cl.ID, filter))
		}
		c.h.log.Info("subscription removed: not covered by the connection's token", "client", c.cl.ID, "topic", filter)
	}
}

// draining reports whether the client is reading at least minRate packets
// per second, measured over windows of at least 50 ms.
func (c *client) draining(now time.Time, minRate float64) bool {
	c.drainMu.Lock()
	defer c.drainMu.Unlock()
	if el := now.Sub(c.drainAt); el >= 50*time.Millisecond {
		n := c.cl.PacketsSent()
		if !c.drainAt.IsZero() {
			c.drainPerSec = float64(n-c.drainCount) / el.Seconds()
		}
		c.drainAt, c.drainCount = now, n
	}
	return c.drainPerSec >= minRate
}

// mochiCode is the Mochi packets.Code (with its reason string) of an MQTT 5
// reason code the core decided.
func mochiCode(c tokenauth.ReasonCode) packets.Code {
	switch c {
	case tokenauth.ReasonBadCredentials:
		return packets.ErrBadUsernameOrPassword
	case tokenauth.ReasonNotAuthorized:
		return packets.ErrNotAuthorized
	case tokenauth.ReasonClientIDNotValid:
		return packets.ErrClientIdentifierNotValid
	case tokenauth.ReasonUnavailable:
		return packets.ErrServerUnavailable
	case tokenauth.ReasonBadAuthMethod:
		return packets.ErrBadAuthenticationMethod
	case tokenauth.ReasonAdministrativeAction:
		return packets.ErrAdministrativeAction
	case tokenauth.ReasonMaxConnectTime:
		return packets.ErrMaxConnectTime
	}
	return packets.Code{Code: byte(c), Reason: "unspecified error"}
}

// connackCode is the CONNACK code of a refusal for cl's protocol version:
// MQTT 5's reason, or the 3.1.1 return code SPEC §3.1 gives (Mochi's own
// table maps 0x86 to 0x05 and has no 0x87).
func connackCode(cl *mqtt.Client, c tokenauth.ReasonCode) packets.Code {
	pc := mochiCode(c)
	if cl.Properties.ProtocolVersion < 5 {
		return packets.Code{Code: c.V3(), Reason: pc.Reason}
	}
	return pc
}
