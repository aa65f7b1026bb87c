package hook

import (
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tokenmq/tokenmq/sessionstore"
	"github.com/tokenmq/tokenmq/token"
)

// Persistent sessions (SPEC §3.6, §3.7): a client with CleanSession 0
// (3.1.1) or a Session Expiry Interval (5) keeps its session, subscriptions
// and queue while offline. Mochi keeps the session object; the hook keeps
// the rights it last held, so that only messages those rights cover are
// queued, and a resuming connection gets only what its own rights cover.

// persists reports whether a CONNECT asks for a session that outlives the
// connection.
func persists(cl *mqtt.Client) bool {
	if cl.Properties.ProtocolVersion >= 5 {
		return cl.Properties.Props.SessionExpiryInterval > 0
	}
	return !cl.Properties.Clean
}

// OnSessionEstablish runs before Mochi hands the new connection the
// session of its client ID (takeover or resume): the old connection's
// state goes now (its rights with it), a clean start discards the stored
// session, and a persistent session is on disk before its CONNACK.
func (h *Hook) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	c := h.client(cl)
	if c == nil {
		return
	}
	h.cancelWill(cl.ID) // [MQTT-3.1.3-9]: a new connection to the session, no delayed Will
	var inherited map[uint16]msgRef
	wasPersistent := false
	if old, ok := h.server.Clients.Get(cl.ID); ok && old != cl {
		// The old client keeps its state until the new one's CONNACK is out
		// (OnPacketSent): a delivery Mochi routes to it while it hands the
		// session over is passed on (queue.go), not lost.
		if oc := h.client(old); oc != nil {
			oc.qmu.Lock()
			inherited = oc.queue
			oc.queue = nil
			oc.supersededBy = c
			oc.qmu.Unlock()
			wasPersistent = oc.persistent
			c.supersedes = old
		}
	}
	clean := pk.Connect.Clean
	if store := h.cfg.Store; store != nil && clean && wasPersistent { // a clean start discards the stored session
		if err := store.Write(sessionstore.DeleteSession(cl.ID)); err != nil {
			h.log.Error("discarding a stored session failed", "client", cl.ID, "err", err)
		}
	}
	if !persists(cl) {
		return
	}
	c.qmu.Lock()
	c.persistent = true
	if !clean {
		c.queue = inherited
	}
	if c.queue == nil {
		c.queue = make(map[uint16]msgRef)
	}
	c.qmu.Unlock()
	h.persistent.Add(1)
	if store := h.cfg.Store; store != nil {
		if err := store.Write(sessionstore.PutSession(h.sessionRecord(c, 0))); err != nil {
			h.log.Error("storing a persistent session failed", "client", cl.ID, "err", err)
		}
	}
}

// sessionRecord is what is kept on disk of a persistent session.
func (h *Hook) sessionRecord(c *client, disconnected int64) sessionstore.Session {
	p := c.cl.Properties
	form, ak := c.Credential()
	ss := sessionstore.Session{ClientID: c.cl.ID, Listener: c.cl.Net.Listener, Protocol: p.ProtocolVersion,
		ExpiryInterval: p.Props.SessionExpiryInterval, ExpiryFlag: p.Props.SessionExpiryIntervalFlag,
		ReceiveMaximum: p.Props.ReceiveMaximum, TopicAliasMaximum: p.Props.TopicAliasMaximum,
		MaximumPacketSize: p.Props.MaximumPacketSize, RequestProblemInfo: p.Props.RequestProblemInfo,
		ProblemInfoFlag: p.Props.RequestProblemInfoFlag, Form: byte(form), AccessKeyID: ak, Disconnected: disconnected,
		Connected: c.connectedAt}
	if max := h.server.Options.Capabilities.MaximumSessionExpiryInterval; ss.ExpiryInterval > max {
		ss.ExpiryInterval = max // as the CONNACK will say
	}
	for _, g := range c.Grants() {
		ss.Held = append(ss.Held, sessionstore.Held{Grant: g.Grant, Type: g.Type})
	}
	return ss
}

// park keeps a persistent session whose client went offline: its timers
// stop, it can no longer be kicked, and it keeps the rights it had for its
// queue.
func (h *Hook) park(c *client) {
	c.End()
	if !c.parked.Swap(true) {
		h.parkedN.Add(1)
	}
	if store := h.cfg.Store; store != nil {
		store.WriteAsync(sessionstore.PutSession(h.sessionRecord(c, time.Now().Unix())))
	}
}

// OnClientExpired discards an offline session at the end of its expiry
// interval.
func (h *Hook) OnClientExpired(cl *mqtt.Client) {
	h.expired.Add(1)
	h.forget(cl)
	if store := h.cfg.Store; store != nil {
		store.WriteAsync(sessionstore.DeleteSession(cl.ID))
	}
}

// Discard carries out a kick (KickClient, tokenauth.Config.Discard) on an
// offline session: one of clientID whose last connection started before
// kickedAt is discarded, as if it had expired. A connected client's session
// is discarded by its Disconnect.
func (h *Hook) Discard(clientID string, kickedAt time.Time) {
	cl, ok := h.server.Clients.Get(clientID)
	if !ok {
		return
	}
	c := h.client(cl)
	if c == nil || !c.parked.Load() || c.connectedAt >= kickedAt.UnixMilli() {
		return
	}
	cl.ClearInflights()
	h.server.UnsubscribeClient(cl)
	h.server.Clients.Delete(clientID)
	h.forget(cl)
	if store := h.cfg.Store; store != nil {
		store.WriteAsync(sessionstore.DeleteSession(clientID))
	}
	h.log.Info("offline session discarded: its client was kicked", "client", clientID)
}

// mayQueue reports whether an offline session takes a message on topic:
// the rights it last held cover it now (its token neither expired nor
// revoked) and its queue has room.
func (h *Hook) mayQueue(c *client, topic string) bool {
	return c.cl.State.Inflight.Len() < h.cfg.MaxQueued && c.Permits(token.ActionRead, topic, h.auth.Now())
}
