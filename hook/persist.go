package hook

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tokenmq/tokenmq/sessionstore"
	"github.com/tokenmq/tokenmq/tokenauth"
)

// The broker's state on disk (SPEC §3.6), through Mochi's storage events:
// Stored* hand Mochi what the store held at start; the On* events keep it
// up to date. Messages for persistent sessions are written by OnPublish
// (queue.go), before the publisher is acknowledged.

// restoredSession is a session read back at start, until Mochi reports
// the client it made of it.
type restoredSession struct {
	rec      sessionstore.Session
	messages []sessionstore.Message
}

// Restore hands the hook the state the store held at start. Call it before
// the server's Serve, which asks for it.
func (h *Hook) Restore(st sessionstore.State) {
	h.restoreMu.Lock()
	defer h.restoreMu.Unlock()
	h.restored = make(map[string]*restoredSession, len(st.Sessions))
	for _, s := range st.Sessions {
		h.restored[s.ClientID] = &restoredSession{rec: s}
	}
	byClient := map[string][]sessionstore.Message{}
	for _, m := range st.Messages {
		if _, ok := h.restored[m.ClientID]; ok {
			byClient[m.ClientID] = append(byClient[m.ClientID], m)
		}
	}
	h.restoredState = st
	h.restoredState.Messages = nil
	for id, ms := range byClient {
		assignPacketIDs(ms)
		h.restored[id].messages = ms
		h.restoredState.Messages = append(h.restoredState.Messages, ms...) // Mochi asks for them after the clients
	}
}

// assignPacketIDs gives the messages that never got one a packet ID no
// other message of the session has.
func assignPacketIDs(ms []sessionstore.Message) {
	used := make(map[uint16]bool, len(ms))
	for i := range ms {
		if ms[i].PacketID != 0 {
			if used[ms[i].PacketID] {
				ms[i].PacketID = 0 // two records with one ID (a lost mark): renumber one
			} else {
				used[ms[i].PacketID] = true
			}
		}
	}
	next := uint16(0)
	for i := range ms {
		if ms[i].PacketID != 0 {
			continue
		}
		for next++; used[next] || next == 0; next++ {
		}
		ms[i].PacketID = next
		used[next] = true
	}
}

// StoredClients implements mqtt.Hook: the persistent sessions on disk.
func (h *Hook) StoredClients() ([]storage.Client, error) {
	h.restoreMu.Lock()
	defer h.restoreMu.Unlock()
	out := make([]storage.Client, 0, len(h.restored))
	for _, r := range h.restored {
		s := r.rec
		out = append(out, storage.Client{ID: s.ClientID, Listener: s.Listener, ProtocolVersion: s.Protocol, Clean: false,
			Properties: storage.ClientProperties{SessionExpiryInterval: s.ExpiryInterval, SessionExpiryIntervalFlag: s.ExpiryFlag,
				ReceiveMaximum: s.ReceiveMaximum, TopicAliasMaximum: s.TopicAliasMaximum, MaximumPacketSize: s.MaximumPacketSize,
				RequestProblemInfo: s.RequestProblemInfo, RequestProblemInfoFlag: s.ProblemInfoFlag}})
	}
	return out, nil
}

// StoredSubscriptions implements mqtt.Hook.
func (h *Hook) StoredSubscriptions() ([]storage.Subscription, error) {
	out := make([]storage.Subscription, 0, len(h.restoredState.Subscriptions))
	for _, s := range h.restoredState.Subscriptions {
		out = append(out, storage.Subscription{Client: s.ClientID, Filter: s.Filter, Qos: s.QoS, NoLocal: s.NoLocal,
			RetainAsPublished: s.RetainAsPublished, RetainHandling: s.RetainHandling, Identifier: s.Identifier})
	}
	return out, nil
}

// StoredInflightMessages implements mqtt.Hook: the messages queued or in
// flight for the persistent sessions.
func (h *Hook) StoredInflightMessages() ([]storage.Message, error) {
	out := make([]storage.Message, 0, len(h.restoredState.Messages))
	for _, m := range h.restoredState.Messages {
		sm := storage.Message{Client: m.ClientID, Origin: m.Origin, PacketID: m.PacketID, TopicName: m.Topic, Payload: m.Payload,
			Created: m.Created, FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: m.QoS, Retain: m.Retain, Dup: true}}
		if m.State == sessionstore.StatePubrel {
			sm = storage.Message{Client: m.ClientID, PacketID: m.PacketID, Created: m.Created,
				FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}}
		}
		p := decodeProperties(m.Properties)
		sm.Properties = storage.MessageProperties{PayloadFormat: p.PayloadFormat, PayloadFormatFlag: p.PayloadFormatFlag,
			MessageExpiryInterval: p.MessageExpiryInterval, ContentType: p.ContentType, ResponseTopic: p.ResponseTopic,
			CorrelationData: p.CorrelationData, User: p.User, SubscriptionIdentifier: p.SubscriptionIdentifier}
		out = append(out, sm)
	}
	return out, nil
}

// StoredRetainedMessages implements mqtt.Hook.
func (h *Hook) StoredRetainedMessages() ([]storage.Message, error) {
	out := make([]storage.Message, 0, len(h.restoredState.Retained))
	for _, m := range h.restoredState.Retained {
		p := decodeProperties(m.Properties)
		out = append(out, storage.Message{TopicName: m.Topic, Payload: m.Payload, Origin: m.Origin, Created: m.Created,
			FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: m.QoS, Retain: true},
			Properties: storage.MessageProperties{PayloadFormat: p.PayloadFormat, PayloadFormatFlag: p.PayloadFormatFlag,
				MessageExpiryInterval: p.MessageExpiryInterval, ContentType: p.ContentType, ResponseTopic: p.ResponseTopic,
				CorrelationData: p.CorrelationData, User: p.User}})
	}
	return out, nil
}

// restoreParked makes the offline session of a client Mochi read back at
// start (it reports each with OnDisconnect): the rights it held before the
// restart, rebuilt from its stored grants, and the index of its queue.
func (h *Hook) restoreParked(cl *mqtt.Client, expire bool) {
	if cl.Net.Conn != nil || expire {
		return
	}
	h.restoreMu.Lock()
	r := h.restored[cl.ID]
	delete(h.restored, cl.ID)
	h.restoreMu.Unlock()
	if r == nil {
		return
	}
	grants := make([]tokenauth.HeldGrant, len(r.rec.Held))
	for i, hg := range r.rec.Held {
		grants[i] = tokenauth.HeldGrant{Grant: hg.Grant, Type: hg.Type}
	}
	c := &client{h: h, cl: cl, persistent: true, queue: make(map[uint16]msgRef, len(r.messages)), connectedAt: r.rec.Connected}
	c.Session = h.auth.Restore(cl.ID, tokenauth.Form(r.rec.Form), r.rec.AccessKeyID, grants, c)
	for _, m := range r.messages {
		c.queue[m.PacketID] = msgRef{seq: m.Seq, topic: m.Topic, expiry: m.Expiry}
	}
	c.parked.Store(true)
	h.clients.Store(cl, c)
	h.persistent.Add(1)
	h.parkedN.Add(1)
}

// OnSubscribed keeps a persistent session's new subscriptions, before the
// SUBACK.
func (h *Hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	c := h.client(cl)
	if c == nil || !c.persistent {
		return
	}
	var ops []sessionstore.Op
	for i, f := range pk.Filters {
		if i < len(reasonCodes) && reasonCodes[i] < packets.ErrUnspecifiedError.Code {
			ops = append(ops, sessionstore.PutSubscription(sessionstore.Subscription{ClientID: cl.ID, Filter: f.Filter, QoS: f.Qos,
				NoLocal: f.NoLocal, RetainAsPublished: f.RetainAsPublished, RetainHandling: f.RetainHandling, Identifier: f.Identifier}))
		}
	}
	if len(ops) > 0 {
		if err := h.cfg.Store.Write(ops...); err != nil {
			h.log.Error("storing subscriptions failed", "client", cl.ID, "err", err)
		}
	}
}

// OnUnsubscribed forgets a persistent session's subscriptions, before the
// UNSUBACK.
func (h *Hook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	c := h.client(cl)
	if c == nil || !c.persistent {
		return
	}
	ops := make([]sessionstore.Op, 0, len(pk.Filters))
	for _, f := range pk.Filters {
		ops = append(ops, sessionstore.DeleteSubscription(cl.ID, f.Filter))
	}
	if err := h.cfg.Store.Write(ops...); err != nil {
		h.log.Error("removing stored subscriptions failed", "client", cl.ID, "err", err)
	}
}

// OnRetainMessage keeps a retained message (or its removal) on disk. A
// QoS 1/2 publish's was written with its records, before its
// acknowledgement (persistPublish); this writes the others' (QoS 0, Wills).
func (h *Hook) OnRetainMessage(_ *mqtt.Client, pk packets.Packet, r int64) {
	if t, _ := h.ticketOf(&pk); t != nil && t.retained {
		return
	}
	if r == 0 {
		return // a removal of nothing
	}
	if err := h.cfg.Store.Write(retainedOp(pk)); err != nil {
		h.log.Error("storing a retained message failed", "topic", pk.TopicName, "err", err)
	}
}

// retainedOp is the write that keeps pk as its topic's retained message,
// or removes it (an empty payload).
func retainedOp(pk packets.Packet) sessionstore.Op {
	if len(pk.Payload) == 0 {
		return sessionstore.DeleteRetained(pk.TopicName)
	}
	return sessionstore.PutRetained(sessionstore.Message{Topic: pk.TopicName, QoS: pk.FixedHeader.Qos, Retain: true, Origin: pk.Origin,
		Payload: pk.Payload, Created: pk.Created, Expiry: pk.Expiry, Properties: encodeProperties(pk.Properties)})
}

// OnRetainedExpired forgets a retained message that expired.
func (h *Hook) OnRetainedExpired(topic string) {
	h.cfg.Store.WriteAsync(sessionstore.DeleteRetained(topic))
}
