package hook

import (
	"strings"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tokenmq/tokenmq/token"
	"github.com/tokenmq/tokenmq/tokenauth"
)

// OnPacketRead sees client publishes to $SYS before Mochi drops them (it
// drops them without asking hooks, and without acknowledging them): it
// handles $SYS/uploadToken, and answers the others as denied publishes.
func (h *Hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if !h.limitPacket(cl, &pk) {
		return pk, packets.ErrRejectPacket // Mochi closes the connection
	}
	if pk.FixedHeader.Type == packets.Connect && pk.Connect.PasswordFlag && len(pk.Connect.Password) == 0 {
		// An empty password is bad credentials (0x86 / 0x04, SPEC §3.1), not
		// the protocol error Mochi would answer before any hook is asked.
		pk.Connect.PasswordFlag = false
		return pk, nil
	}
	if pk.FixedHeader.Type == packets.Pubrec {
		h.markReleased(cl, pk.PacketID)
		return pk, nil
	}
	if pk.FixedHeader.Type != packets.Publish || len(pk.TopicName) < 4 || !strings.EqualFold(pk.TopicName[:4], "$SYS") || pk.TopicName == refusedTopic {
		return pk, nil
	}
	if pk.TopicName == tokenauth.TopicUploadToken {
		h.renew(cl, pk)
		return pk, nil
	}
	h.obs.ACLDenied("publish")
	if cl.Properties.ProtocolVersion >= 5 {
		h.ackDropped(cl, pk, packets.ErrNotAuthorized)
	} else {
		h.ackDropped(cl, pk, packets.CodeSuccess) // acknowledged and dropped, as other v3.1.1 denials
	}
	return pk, nil
}

// renew handles a $SYS/uploadToken publish: a valid token replaces the
// rights of its type for this connection; an invalid one ends it.
func (h *Hook) renew(cl *mqtt.Client, pk packets.Packet) {
	c := h.client(cl)
	if c == nil || c.Closing() {
		return
	}
	tok, typ, err := tokenauth.ParseUpload(pk.Payload)
	if err != nil {
		h.refuseRenewal(c, pk, typ, "malformed renewal")
		return
	}
	switch c.Renew(tok, typ) {
	case tokenauth.RenewInvalid:
		h.refuseRenewal(c, pk, typ, "invalid renewal")
	case tokenauth.RenewUnavailable:
		if pk.FixedHeader.Qos > 0 && cl.Properties.ProtocolVersion >= 5 {
			h.ackDropped(cl, pk, packets.ErrUnspecifiedError)
		}
	case tokenauth.Renewed:
		h.ackDropped(cl, pk, packets.CodeSuccess)
	}
}

// refuseRenewal answers an invalid $SYS/uploadToken: a v5 client's QoS 1/2
// publish gets 0x87, then the notice (code 1) and the disconnect.
func (h *Hook) refuseRenewal(c *client, pk packets.Packet, typ token.Actions, why string) {
	if c.cl.Properties.ProtocolVersion >= 5 {
		h.ackDropped(c.cl, pk, packets.ErrNotAuthorized)
	}
	c.RefuseRenewal(typ, why)
}

// OnAuthPacket handles MQTT 5 re-authentication: AUTH with reason 0x19,
// method "tokenmq", the new token as Authentication Data and, optionally, a
// user property "type" (R, W or RW; default: the token's own Actions). It
// answers AUTH 0x00, or ends the connection (0x8C for another method, as an
// invalid renewal otherwise).
func (h *Hook) OnAuthPacket(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	c := h.client(cl)
	if c == nil || c.Closing() {
		return pk, packets.ErrNotAuthorized
	}
	if pk.Properties.AuthenticationMethod != tokenauth.AuthMethod {
		return pk, packets.ErrBadAuthenticationMethod // Mochi disconnects with it
	}
	var typ token.Actions
	for _, up := range pk.Properties.User {
		if up.Key == "type" {
			t, ok := tokenauth.ParseType(up.Val)
			if !ok {
				c.RefuseRenewal(0, "malformed re-authentication")
				return pk, nil
			}
			typ = t
		}
	}
	switch c.Renew(string(pk.Properties.AuthenticationData), typ) {
	case tokenauth.RenewInvalid:
		c.RefuseRenewal(typ, "invalid re-authentication")
	case tokenauth.RenewUnavailable:
		return pk, packets.ErrServerUnavailable
	case tokenauth.Renewed:
		c.UseAuthMethod()
		_ = cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Auth},
			ReasonCode: packets.CodeSuccess.Code, Properties: packets.Properties{AuthenticationMethod: tokenauth.AuthMethod}})
	}
	return pk, nil
}

// ackDropped acknowledges a publish to $SYS, which Mochi then drops without
// answering. A QoS 2 one acknowledged with success enters the in-flight
// table so that Mochi completes PUBREL/PUBCOMP as usual.
func (h *Hook) ackDropped(cl *mqtt.Client, pk packets.Packet, reason packets.Code) {
	switch pk.FixedHeader.Qos {
	case 1:
		_ = cl.WritePacket(ack(packets.Puback, pk.PacketID, reason))
	case 2:
		rec := ack(packets.Pubrec, pk.PacketID, reason)
		if reason.Code < packets.ErrUnspecifiedError.Code && cl.State.Inflight.Set(rec) {
			atomic.AddInt64(&h.server.Info.Inflight, 1)
			cl.State.Inflight.DecreaseReceiveQuota()
		}
		_ = cl.WritePacket(rec)
	}
}
