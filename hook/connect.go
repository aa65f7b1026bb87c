package hook

import (
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tokenmq/tokenmq/sessionstore"
	"github.com/tokenmq/tokenmq/tokenauth"
)

// OnConnect authenticates the CONNECT through the Authority. On refusal it
// sends the CONNACK itself, with the code SPEC §3.1 gives, and returns an
// error so that Mochi closes the connection.
func (h *Hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	c := &client{h: h, cl: cl, connectedAt: time.Now().UnixMilli()}
	s, ref := h.auth.Connect(tokenauth.ConnectRequest{
		ClientID: cl.ID, Remote: cl.Net.Remote, ProtocolVersion: cl.Properties.ProtocolVersion,
		Username: pk.Connect.Username, Password: pk.Connect.Password, HasPassword: pk.Connect.PasswordFlag,
		AuthMethod: pk.Properties.AuthenticationMethod, AuthData: pk.Properties.AuthenticationData,
		HasWill: pk.Connect.WillFlag, WillTopic: pk.Connect.WillTopic, Persistent: persists(cl),
	}, c)
	if ref != nil {
		_ = h.server.SendConnack(cl, connackCode(cl, ref.Code), false, nil)
		return mochiCode(ref.Code)
	}
	c.Session = s
	c.awaitingConnack.Store(true)
	h.connacks.Add(1) // before Mochi writes the CONNACK: OnPacketSent is provided for it
	h.clients.Store(cl, c)
	if sl := slot(cl); sl != nil {
		sl.Store(c)
	}
	return nil
}

// OnConnectAuthenticate implements mqtt.Hook: only connections OnConnect
// authenticated get in.
func (h *Hook) OnConnectAuthenticate(cl *mqtt.Client, _ packets.Packet) bool {
	return h.client(cl) != nil
}

// OnSessionEstablished starts the session's timers once the CONNACK is
// out (or carries out a kick that arrived in between); a resumed session's
// inherited subscriptions must fit this connection's token.
func (h *Hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if c := h.client(cl); c != nil {
		c.Establish()
	}
}

// OnDisconnect forgets the connection, or parks its session if it
// persists (SPEC §3.6): it keeps the rights it had for its offline queue.
func (h *Hook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	c := h.client(cl)
	if c == nil {
		h.restoreParked(cl, expire) // Mochi reports sessions it read back at start this way
		return
	}
	c.qmu.Lock()
	superseded := c.supersededBy != nil
	c.qmu.Unlock()
	if expire || !c.persistent || cl.IsTakenOver() || superseded {
		if expire && c.persistent && h.cfg.Store != nil && !cl.IsTakenOver() {
			h.cfg.Store.WriteAsync(sessionstore.DeleteSession(cl.ID)) // e.g. a v5 DISCONNECT that set the expiry to 0
		}
		h.forget(cl)
		return
	}
	h.park(c)
}

// forget drops the connection's state: from here on it has no rights.
func (h *Hook) forget(cl *mqtt.Client) {
	if sl := slot(cl); sl != nil {
		sl.Store(nil) // first: from here on the connection has no rights
	}
	v, ok := h.clients.LoadAndDelete(cl)
	if !ok {
		return
	}
	c := v.(*client)
	c.End()
	if c.awaitingConnack.CompareAndSwap(true, false) { // its CONNACK was never written
		h.connacks.Add(-1)
	}
	if c.persistent {
		h.persistent.Add(-1)
		if c.parked.Load() {
			h.parkedN.Add(-1)
		}
	}
}
