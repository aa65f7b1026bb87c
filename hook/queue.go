package hook

import (
	"bytes"
	"encoding/json"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tokenmq/tokenmq/sessionstore"
	"github.com/tokenmq/tokenmq/token"
)

// The offline queue and in-flight messages of persistent sessions (SPEC
// §3.6). Mochi keeps them in each session's in-flight table; the hook
// decides what enters it (OnACLCheck: the rights the offline session last
// held, and room), what stays when the session resumes (the new
// connection's rights), and what is on disk before the publisher's PUBACK.
//
// Mochi acknowledges a QoS 1/2 publish before it routes it, and numbers a
// delivery only when it routes it. So OnPublish, which runs before the
// acknowledgement, works out the persistent sessions the message is for,
// writes a record for each and waits for the commit; the packet carries a
// ticket (in its Filters, which Mochi copies but never encodes for a
// PUBLISH) by which OnQosPublish finds each record when Mochi numbers the
// delivery, OnSelectSubscribers repeats the shared-subscription choice the
// records were written for, and OnPublished removes the records of
// deliveries Mochi did not make after all.

// ticketMarker is the Filter of the one subscription a ticketed PUBLISH
// carries; its Identifier is the ticket's number.
const ticketMarker = "\x00tokenmq-ticket"

// ticket is a publish whose records were written before its PUBACK.
type ticket struct {
	topic    string
	retained bool                            // its retained message (or removal) is written too
	shared   map[string]packets.Subscription // the shared subscribers chosen
	mu       sync.Mutex
	seqs     map[string]record // client ID -> record not yet claimed by a delivery
}

// record is a message written for a session before its delivery: a place
// reserved in that session's queue until the delivery claims it.
type record struct {
	seq uint64
	c   *client
}

// take claims the record written for a client; its reserved place is
// now the delivery's.
func (t *ticket) take(clientID string) (uint64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rec, ok := t.seqs[clientID]
	delete(t.seqs, clientID)
	if ok {
		rec.c.reserved.Add(-1)
	}
	return rec.seq, ok
}

func (h *Hook) ticketOf(pk *packets.Packet) (*ticket, uint64) {
	if len(pk.Filters) != 1 || pk.Filters[0].Filter != ticketMarker || pk.Filters[0].Identifier <= 0 {
		return nil, 0
	}
	id := uint64(pk.Filters[0].Identifier)
	if v, ok := h.tickets.Load(id); ok {
		return v.(*ticket), id
	}
	return nil, 0
}

// nextSeq numbers a message for a persistent session.
func (h *Hook) nextSeq() uint64 {
	if h.cfg.Store != nil {
		return h.cfg.Store.NextSeq()
	}
	return h.memSeq.Add(1)
}

// target is a persistent session a publish is for, at the QoS it gets.
type target struct {
	c   *client
	sub packets.Subscription
	qos byte
}

// targets are the persistent sessions a QoS 1/2 publish goes to, with the
// shared subscribers chosen for it; offline sessions that would take it
// but whose queue is full are counted as drops.
func (h *Hook) targets(pk *packets.Packet, reserve bool) ([]target, map[string]packets.Subscription) {
	subs := h.server.Topics.Subscribers(pk.TopicName)
	if len(subs.Shared) > 0 {
		subs.SelectShared()
	}
	now := h.auth.Now()
	var out []target
	consider := func(id string, sub packets.Subscription) {
		if sub.NoLocal && pk.Origin == id {
			return
		}
		qos := min(pk.FixedHeader.Qos, sub.Qos, h.server.Options.Capabilities.MaximumQos)
		if qos == 0 {
			return
		}
		mcl, ok := h.server.Clients.Get(id)
		if !ok {
			return
		}
		c := h.client(mcl)
		if c == nil || !c.persistent {
			return
		}
		if c.parked.Load() {
			if !c.Permits(token.ActionRead, pk.TopicName, now) {
				return
			}
			// Room counts the records already written for it whose delivery
			// Mochi has not made yet (held publishes, hold.go).
			if mcl.State.Inflight.Len()+int(c.reserved.Load()) >= h.cfg.MaxQueued {
				h.droppedFull.Add(1)
				return
			}
		} else if !c.Rights().Readable(pk.TopicName) {
			return
		}
		if reserve { // released when the delivery claims its record, or the ticket ends
			c.reserved.Add(1)
		}
		out = append(out, target{c: c, sub: sub, qos: qos})
	}
	for id, sub := range subs.Subscriptions {
		consider(id, sub)
	}
	for id, sub := range subs.SharedSelected {
		consider(id, sub)
	}
	return out, subs.SharedSelected
}

// prepareRecords starts writing, for a QoS 1/2 publish, a record for
// every persistent session it is for (and its retained message), tickets
// the packet, and returns the write's result channel; nil if there is
// nothing to write.
func (h *Hook) prepareRecords(pk *packets.Packet) <-chan error {
	store := h.cfg.Store
	var ts []target
	var shared map[string]packets.Subscription
	if h.persistent.Load() > 0 {
		ts, shared = h.targets(pk, store != nil)
	}
	retain := store != nil && pk.FixedHeader.Retain
	if store == nil || len(ts) == 0 && !retain {
		return nil // in memory, Mochi's own routing queues it
	}
	t := &ticket{topic: pk.TopicName, retained: retain, shared: shared, seqs: make(map[string]record, len(ts))}
	ops := make([]sessionstore.Op, 0, len(ts)+1)
	if retain {
		ops = append(ops, retainedOp(*pk))
	}
	props := encodeProperties(pk.Properties)
	for _, tg := range ts {
		seq := store.NextSeq()
		t.seqs[tg.c.cl.ID] = record{seq: seq, c: tg.c}
		ops = append(ops, sessionstore.PutMessage(sessionstore.Message{
			ClientID: tg.c.cl.ID, Seq: seq, QoS: tg.qos,
			Retain: pk.FixedHeader.Retain && tg.sub.RetainAsPublished && tg.c.cl.Properties.ProtocolVersion >= 5,
			Topic:  pk.TopicName, Origin: pk.Origin, Payload: pk.Payload, Created: pk.Created, Expiry: pk.Expiry,
			Properties: props,
		}))
	}
	id := h.ticketSeq.Add(1)
	h.ticketsN.Add(1) // before the ticket is seen: OnSelectSubscribers and OnPublished are provided for it
	h.tickets.Store(id, t)
	pk.Filters = packets.Subscriptions{{Filter: ticketMarker, Identifier: int(id)}}
	return store.Submit(ops...)
}

// OnSelectSubscribers picks, for a ticketed publish, the shared
// subscribers its records were written for.
func (h *Hook) OnSelectSubscribers(subs *mqtt.Subscribers, pk packets.Packet) *mqtt.Subscribers {
	if t, _ := h.ticketOf(&pk); t != nil && t.shared != nil {
		subs.SharedSelected = t.shared
	}
	return subs
}

// OnPublished runs when Mochi has routed a publish: records written for
// deliveries it did not make (a session that went away, a full table) go.
func (h *Hook) OnPublished(_ *mqtt.Client, pk packets.Packet) { h.dropTicket(&pk) }

// dropTicket ends a ticket: its records no delivery claimed are deleted.
func (h *Hook) dropTicket(pk *packets.Packet) {
	t, id := h.ticketOf(pk)
	if t == nil {
		return
	}
	if _, loaded := h.tickets.LoadAndDelete(id); !loaded {
		return
	}
	h.ticketsN.Add(-1)
	t.mu.Lock()
	defer t.mu.Unlock()
	if store := h.cfg.Store; store != nil {
		for clientID, rec := range t.seqs {
			rec.c.reserved.Add(-1)
			store.WriteAsync(sessionstore.DeleteMessage(clientID, rec.seq))
		}
	}
}

// OnQosPublish records a QoS 1/2 delivery Mochi put in a persistent
// session's in-flight table (queued, if the client is offline).
func (h *Hook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, _ int64, _ int) {
	if pk.FixedHeader.Type != packets.Publish {
		return // the acknowledgement of the client's own QoS 1/2 publish
	}
	c := h.client(cl)
	if c == nil || !c.persistent {
		return
	}
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if _, ok := c.queue[pk.PacketID]; ok {
		return // a resend
	}
	if c.parked.Load() {
		h.queued.Add(1)
	}
	ref := msgRef{topic: pk.TopicName, expiry: pk.Expiry}
	store := h.cfg.Store
	if t, _ := h.ticketOf(&pk); t != nil {
		if ref.topic == "" {
			ref.topic = t.topic // an outgoing topic alias: the packet has no topic
		}
		if seq, ok := t.take(cl.ID); ok {
			ref.seq = seq
			// The packet ID matters after a restart only to QoS 2, which
			// must not be delivered twice: a QoS 1 message resent under a
			// new ID after a crash is at worst a duplicate, which QoS 1
			// allows, and skipping the write saves a third of them.
			if store != nil && pk.FixedHeader.Qos == 2 {
				store.WriteAsync(sessionstore.MarkMessage(cl.ID, seq, pk.PacketID, sessionstore.StatePublish))
			}
		}
	}
	if ref.seq == 0 { // not ticketed: a retained message on subscribe, a Will, a race with the session's start
		ref.seq = h.nextSeq()
		if store != nil && ref.topic != "" {
			store.WriteAsync(sessionstore.PutMessage(sessionstore.Message{ClientID: cl.ID, Seq: ref.seq, PacketID: pk.PacketID,
				QoS: pk.FixedHeader.Qos, Retain: pk.FixedHeader.Retain, Topic: ref.topic, Origin: pk.Origin, Payload: pk.Payload,
				Created: pk.Created, Expiry: pk.Expiry, Properties: encodeProperties(pk.Properties)}))
		}
	}
	if nc := c.supersededBy; nc != nil {
		h.passOn(nc, pk, ref) // routed to this client while it handed its session over
		return
	}
	if c.queue == nil {
		c.queue = make(map[uint16]msgRef)
	}
	c.queue[pk.PacketID] = ref
}

// passOn gives a delivery that reached a client being taken over to the
// client that takes its session. Until that client's CONNACK is out,
// Mochi is still copying the old client's in-flight table into it, so the
// message waits on the new client (adopt places it once the copy is
// done); after, it goes straight in and out.
func (h *Hook) passOn(nc *client, pk packets.Packet, ref msgRef) {
	if ref.topic == "" {
		h.dropPassed(nc, ref)
		return
	}
	nc.qmu.Lock()
	if !nc.adopted {
		nc.passed = append(nc.passed, passed{pk, ref})
		nc.qmu.Unlock()
		return
	}
	nc.qmu.Unlock()
	h.place(nc, passed{pk, ref}, true)
}

// passed is a delivery handed from a client being taken over to its
// successor (passOn).
type passed struct {
	pk  packets.Packet
	ref msgRef
}

func (h *Hook) dropPassed(nc *client, ref msgRef) {
	h.droppedResume.Add(1)
	if h.cfg.Store != nil && ref.seq != 0 {
		h.cfg.Store.WriteAsync(sessionstore.DeleteMessage(nc.cl.ID, ref.seq))
	}
}

// adopt runs once c's CONNACK is out, on c's own goroutine, before Mochi
// resends the session: the deliveries passed on to it meanwhile join its
// in-flight table, now final, or go if it started clean.
func (h *Hook) adopt(c *client, sessionPresent bool) {
	c.qmu.Lock()
	pending := c.passed
	c.passed, c.adopted = nil, true
	c.qmu.Unlock()
	for _, p := range pending {
		if !sessionPresent {
			h.dropPassed(c, p.ref)
			continue
		}
		h.place(c, p, false)
	}
}

// place puts a passed-on delivery in c's in-flight table if c's rights
// cover it, and sends it if the session's resend is already over. Mochi
// put the message in the old client's table before OnQosPublish: if the
// copy it made for c holds it, under the same packet ID, that copy is
// indexed, and the resume's re-check (resume) keeps or discards it.
func (h *Hook) place(c *client, p passed, send bool) {
	pk := p.pk
	if cur, ok := c.cl.State.Inflight.Get(pk.PacketID); ok && cur.FixedHeader.Type == packets.Publish &&
		cur.TopicName == pk.TopicName && bytes.Equal(cur.Payload, pk.Payload) {
		c.qmu.Lock()
		c.index(pk.PacketID, p.ref)
		c.qmu.Unlock()
		return
	}
	if !c.Rights().Readable(p.ref.topic) {
		h.dropPassed(c, p.ref)
		return
	}
	id, err := c.cl.NextPacketID()
	if err != nil {
		h.log.Warn("a message for a session being taken over was dropped: no packet ID free", "client", c.cl.ID)
		h.dropPassed(c, p.ref)
		return
	}
	pk.PacketID, pk.TopicName = uint16(id), p.ref.topic
	pk.Properties.TopicAlias, pk.Properties.TopicAliasFlag = 0, false
	pk.FixedHeader.Dup = false
	c.qmu.Lock()
	c.index(pk.PacketID, p.ref)
	c.qmu.Unlock()
	c.cl.State.Inflight.Set(pk)
	if send {
		// Queued behind the deliveries already routed to c, and after the
		// resume's resends (Mochi holds the queue until they are written).
		// If it cannot be queued, the session's next resume resends it.
		_ = c.cl.QueuePacket(pk)
	}
}

// index records a delivery in flight to a persistent session; qmu held.
func (c *client) index(id uint16, ref msgRef) {
	if c.queue == nil {
		c.queue = make(map[uint16]msgRef)
	}
	c.queue[id] = ref
}

// serverToClient reports whether a packet Mochi completes or drops belongs
// to a delivery to the client (not to the client's own publish, whose
// PUBACK Mochi builds and stamps, or whose PUBREL the client sends).
func serverToClient(pk *packets.Packet) bool {
	switch pk.FixedHeader.Type {
	case packets.Puback:
		return pk.Created == 0
	case packets.Pubrel:
		return false
	}
	return true
}

// OnQosComplete forgets a delivery the client acknowledged.
func (h *Hook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) { h.settle(cl, &pk) }

// OnQosDropped forgets a delivery Mochi dropped (expired, refused).
func (h *Hook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) { h.settle(cl, &pk) }

func (h *Hook) settle(cl *mqtt.Client, pk *packets.Packet) {
	if !serverToClient(pk) {
		return
	}
	c := h.client(cl)
	if c == nil || !c.persistent {
		return
	}
	c.qmu.Lock()
	ref, ok := c.queue[pk.PacketID]
	delete(c.queue, pk.PacketID)
	c.qmu.Unlock()
	if ok && h.cfg.Store != nil {
		h.cfg.Store.WriteAsync(sessionstore.DeleteMessage(cl.ID, ref.seq))
	}
}

// markReleased records that the client has a QoS 2 delivery (its PUBREC):
// after a restart the session owes it a PUBREL, not the PUBLISH again.
func (h *Hook) markReleased(cl *mqtt.Client, id uint16) {
	c := h.client(cl)
	if c == nil || !c.persistent || h.cfg.Store == nil {
		return
	}
	c.qmu.Lock()
	ref, ok := c.queue[id]
	c.qmu.Unlock()
	if ok {
		h.cfg.Store.WriteAsync(sessionstore.MarkMessage(cl.ID, ref.seq, id, sessionstore.StatePubrel))
	}
}

// resume re-checks what a resumed session inherited, before Mochi resends
// it (SPEC §3.6, §3.7): every queued or in-flight message the connection's
// own rights do not cover is discarded and counted, never sent; the rest
// is put back in the order it arrived (Mochi resends in the order of the
// packets' Created field) with its topic restored (an alias of the old
// connection means nothing on this one).
func (h *Hook) resume(c *client) {
	cl, r := c.cl, c.Rights()
	now := time.Now().Unix()
	type keep struct {
		pk  packets.Packet
		seq uint64
	}
	var kept []keep
	c.qmu.Lock()
	defer c.qmu.Unlock()
	for _, pk := range cl.State.Inflight.GetAll(false) {
		if pk.FixedHeader.Type != packets.Publish {
			continue // a PUBREL owed (the client has the message) or the client's own QoS 2 publish
		}
		ref, known := c.queue[pk.PacketID]
		topic := pk.TopicName
		if topic == "" {
			topic = ref.topic
		}
		if ref.expiry > 0 && pk.Expiry == 0 {
			pk.Expiry = ref.expiry
		}
		expired := pk.Expiry > 0 && pk.Expiry < now
		if topic == "" || expired || !r.Readable(topic) {
			if cl.State.Inflight.Delete(pk.PacketID) {
				atomic.AddInt64(&h.server.Info.Inflight, -1)
			}
			delete(c.queue, pk.PacketID)
			if !expired {
				h.droppedResume.Add(1)
			}
			if known && h.cfg.Store != nil {
				h.cfg.Store.WriteAsync(sessionstore.DeleteMessage(cl.ID, ref.seq))
			}
			continue
		}
		pk.TopicName = topic
		pk.Properties.TopicAlias, pk.Properties.TopicAliasFlag = 0, false
		seq := ref.seq
		if !known {
			seq = uint64(pk.PacketID) // not ours to order; keep it among the others
		}
		kept = append(kept, keep{pk, seq})
	}
	slices.SortStableFunc(kept, func(a, b keep) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	base := now &^ 0xFFFF // Mochi sorts by uint16(Created): number them within one window
	for i, k := range kept {
		k.pk.Created = base + int64(i)
		cl.State.Inflight.Set(k.pk)
	}
}

// messageProperties are the MQTT 5 properties a stored message keeps.
type messageProperties struct {
	PayloadFormat   *byte                  `json:"pf,omitempty"`
	MessageExpiry   uint32                 `json:"exp,omitempty"`
	ContentType     string                 `json:"ct,omitempty"`
	ResponseTopic   string                 `json:"rt,omitempty"`
	CorrelationData []byte                 `json:"cd,omitempty"`
	User            []packets.UserProperty `json:"user,omitempty"`
	SubscriptionIDs []int                  `json:"sid,omitempty"`
}

func encodeProperties(p packets.Properties) []byte {
	mp := messageProperties{MessageExpiry: p.MessageExpiryInterval, ContentType: p.ContentType, ResponseTopic: p.ResponseTopic,
		CorrelationData: p.CorrelationData, User: p.User, SubscriptionIDs: p.SubscriptionIdentifier}
	if p.PayloadFormatFlag {
		pf := p.PayloadFormat
		mp.PayloadFormat = &pf
	}
	if mp.PayloadFormat == nil && mp.MessageExpiry == 0 && mp.ContentType == "" && mp.ResponseTopic == "" &&
		mp.CorrelationData == nil && mp.User == nil && mp.SubscriptionIDs == nil {
		return nil
	}
	b, _ := json.Marshal(mp) // plain fields: cannot fail
	return b
}

func decodeProperties(b []byte) packets.Properties {
	var p packets.Properties
	var mp messageProperties
	if len(b) == 0 || json.Unmarshal(b, &mp) != nil {
		return p
	}
	p.MessageExpiryInterval, p.ContentType, p.ResponseTopic = mp.MessageExpiry, mp.ContentType, mp.ResponseTopic
	p.CorrelationData, p.User, p.SubscriptionIdentifier = mp.CorrelationData, mp.User, mp.SubscriptionIDs
	if mp.PayloadFormat != nil {
		p.PayloadFormat, p.PayloadFormatFlag = *mp.PayloadFormat, true
	}
	return p
}
