package hook

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tokenmq/tokenmq/internal/testkit"
	"github.com/tokenmq/tokenmq/sessionstore"
	"github.com/tokenmq/tokenmq/token"
	"github.com/tokenmq/tokenmq/tokenauth"
)

// openStore opens a session store in t's temporary directory.
func openStore(t *testing.T, dir string) *sessionstore.Store {
	t.Helper()
	st, err := sessionstore.Open(filepath.Join(dir, sessionstore.FileName), time.Second, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// stored waits for the store's queued writes and reads it back.
func stored(t *testing.T, st *sessionstore.Store) sessionstore.State {
	t.Helper()
	if err := st.Write(); err != nil { // an empty write: every write queued before it is committed
		t.Fatal(err)
	}
	s, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// publishAs runs a client's publish through Mochi as its read loop would
// (InjectPacket: validation, OnPublish, and for a publish the hook holds
// back its release), and waits for the acknowledgement of a QoS 1/2 one.
func (r *rig) publishAs(cl *mqtt.Client, w *wire, topic, payload string, qos byte, id uint16) packets.Packet {
	r.t.Helper()
	pk := publish(topic, qos, id, payload)
	if err := r.server.InjectPacket(cl, pk); err != nil {
		r.t.Fatalf("publish %s: %v", topic, err)
	}
	if qos == 0 {
		return packets.Packet{}
	}
	typ := packets.Puback
	if qos == 2 {
		typ = packets.Pubrec
	}
	var got packets.Packet
	deadline := time.Now().Add(3 * time.Second)
	for {
		for _, p := range w.packets(r.t.(*testing.T)) {
			if p.FixedHeader.Type == typ && p.PacketID == id {
				got = p
			}
		}
		if got.FixedHeader.Type != 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if got.FixedHeader.Type == 0 {
		r.t.Fatalf("no acknowledgement of publish %d on %s", id, topic)
	}
	// Mochi acknowledges before it routes: the publish is routed once the
	// hook has released it (hold.go).
	if c := r.h.client(cl); c != nil {
		testkit.WaitFor(r.t, 3*time.Second, "the publish to be routed", func() bool { return c.heldN.Load() == 0 })
	}
	return got
}

// offline takes a client's connection away as Mochi does: OnDisconnect,
// and the client closed (deliveries to it then stay in its table).
func (r *rig) offline(cl *mqtt.Client) {
	r.h.OnDisconnect(cl, errors.New("gone"), false)
	cl.Stop(errors.New("gone"))
}

// An offline persistent session keeps the rights it last held for its
// queue; a QoS 1 message for it is on disk before the publisher's PUBACK,
// tied to the delivery Mochi numbers, and gone when it is acknowledged; a
// full queue takes no more.
func TestOfflineQueueInTheHook(t *testing.T) {
	st := openStore(t, t.TempDir())
	r := newRig(t, func(_ *tokenauth.Config, c *Config) { c.Store, c.MaxQueued = st, 2 })
	sub, _ := r.newClient("sub", 4, false)
	if err := r.connect(sub, persistent(connectPacket(4, "d", r.apply(token.ActionRead, time.Hour, "fleet/#")))); err != nil {
		t.Fatal(err)
	}
	r.subscribe(sub, "fleet/+/cmd")
	r.h.OnSubscribed(sub, packets.Packet{Filters: packets.Subscriptions{{Filter: "fleet/+/cmd", Qos: 1}}}, []byte{1})
	if s := stored(t, st); len(s.Sessions) != 1 || len(s.Subscriptions) != 1 || s.Sessions[0].Held[0].Grant.Resources[0] != "fleet/#" {
		t.Fatalf("stored session %+v, subscriptions %+v", s.Sessions, s.Subscriptions)
	}
	r.offline(sub)
	if q := r.h.QueueStats(); q.Offline != 1 || r.h.Sessions() != 0 {
		t.Fatalf("offline %d, connected %d", q.Offline, r.h.Sessions())
	}
	if !r.h.OnACLCheck(sub, "fleet/a/cmd", false) || r.h.OnACLCheck(sub, "other/x", false) || r.h.OnACLCheck(sub, "fleet/a/cmd", true) {
		t.Fatal("an offline session's queue does not follow the rights it last held")
	}

	pub, pw := r.mustConnect("pub", 5, "d", r.apply(token.ActionWrite, time.Hour, "fleet/#"))
	r.publishAs(pub, pw, "fleet/a/cmd", "m1", 1, 1)
	s := stored(t, st) // the PUBACK has come: the record is on disk
	if len(s.Messages) != 1 || string(s.Messages[0].Payload) != "m1" || s.Messages[0].ClientID != "sub" {
		t.Fatalf("PUBACK before the message was on disk: %+v", s.Messages)
	}
	queued := sub.State.Inflight.GetAll(false)
	if len(queued) != 1 {
		t.Fatalf("%d queued, want 1", len(queued))
	}
	r.publishAs(pub, pw, "fleet/b/cmd", "m2", 1, 2)
	if q := r.h.QueueStats(); q.Queued != 2 {
		t.Fatalf("queued %d", q.Queued)
	}
	// Full (2): the next is not taken, and is counted.
	r.publishAs(pub, pw, "fleet/c/cmd", "m3", 1, 3)
	if q := r.h.QueueStats(); q.DroppedFull != 1 || sub.State.Inflight.Len() != 2 {
		t.Fatalf("dropped as full: %d, queued %d", q.DroppedFull, sub.State.Inflight.Len())
	}
	if s := stored(t, st); len(s.Messages) != 2 {
		t.Fatalf("%d records, want 2 (none for the dropped one)", len(s.Messages))
	}
	// Acknowledged: the record goes. (The acknowledgement of a client's own
	// publish, which Mochi stamps, is not one of these.)
	id := queued[0].PacketID
	r.h.OnQosComplete(sub, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: id, Created: 1})
	if s := stored(t, st); len(s.Messages) != 2 {
		t.Fatal("the acknowledgement of the client's own publish removed a delivery's record")
	}
	r.h.OnQosComplete(sub, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: id})
	if s := stored(t, st); len(s.Messages) != 1 || string(s.Messages[0].Payload) != "m2" {
		t.Fatalf("after the PUBACK: %+v", s.Messages)
	}
}

// A session resumed by a connection whose token does not cover its
// messages gets none: they are removed before Mochi would resend them,
// counted, and their records deleted. A resume with the rights gets them
// back in the order they came, with their topics.
func TestResumeRechecksInTheHook(t *testing.T) {
	st := openStore(t, t.TempDir())
	r := newRig(t, func(_ *tokenauth.Config, c *Config) { c.Store = st })
	owner := r.apply(token.ActionRead, time.Hour, "secret/#")
	sub, _ := r.newClient("dev", 5, false)
	if err := r.connect(sub, persistent(connectPacket(5, "d", owner))); err != nil {
		t.Fatal(err)
	}
	r.subscribe(sub, "secret/#")
	r.offline(sub)
	pub, pw := r.mustConnect("pub", 5, "d", r.apply(token.ActionWrite, time.Hour, "secret/#"))
	aliasOne := func(cl *mqtt.Client, payload string) { // as if sent with an outgoing topic alias: no topic in the packet
		for _, pk := range cl.State.Inflight.GetAll(false) {
			if string(pk.Payload) == payload {
				pk.TopicName, pk.Properties.TopicAlias, pk.Properties.TopicAliasFlag = "", 1, true
				cl.State.Inflight.Set(pk)
			}
		}
	}
	for i, p := range []string{"a", "b", "c"} {
		r.publishAs(pub, pw, "secret/x", p, 1, uint16(i+1))
	}
	aliasOne(sub, "b")

	thief, _ := r.newClient("dev", 5, false)
	if err := r.connect(thief, persistent(connectPacket(5, "d", r.apply(token.ActionRead, time.Hour, "public/#")))); err != nil {
		t.Fatal(err)
	}
	if n := thief.State.Inflight.Len(); n != 0 {
		t.Fatalf("%d of the owner's messages left for the thief to be resent", n)
	}
	if _, ok := thief.State.Subscriptions.Get("secret/#"); ok {
		t.Fatal("the thief kept the owner's subscription")
	}
	if q := r.h.QueueStats(); q.DroppedOnResume != 3 {
		t.Fatalf("dropped on resume %d, want 3", q.DroppedOnResume)
	}
	if s := stored(t, st); len(s.Messages) != 0 || len(s.Subscriptions) != 0 {
		t.Fatalf("records left: %d messages, %d subscriptions", len(s.Messages), len(s.Subscriptions))
	}

	// The owner's own resume keeps them, in order, topics restored.
	own, _ := r.newClient("dev2", 5, false)
	if err := r.connect(own, persistent(connectPacket(5, "d", owner))); err != nil {
		t.Fatal(err)
	}
	r.subscribe(own, "secret/#")
	r.offline(own)
	for i, p := range []string{"d", "e", "f"} {
		r.publishAs(pub, pw, "secret/x", p, 1, uint16(i+10))
	}
	aliasOne(own, "e")
	back, _ := r.newClient("dev2", 5, false)
	if err := r.connect(back, persistent(connectPacket(5, "d", owner))); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, pk := range back.State.Inflight.GetAll(false) { // Mochi's resend order
		if pk.TopicName != "secret/x" || pk.Properties.TopicAliasFlag {
			t.Fatalf("resent packet without its topic: %+v", pk)
		}
		got = append(got, string(pk.Payload))
	}
	if !slices.Equal(got, []string{"d", "e", "f"}) {
		t.Fatalf("resend order %q", got)
	}
}

// Mochi reads the state back at start through the hook (StoredClients and
// the rest); the sessions come back offline with the rights their stored
// grants give, their queues and subscriptions.
func TestRestoreAtStart(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	r := newRig(t, func(_ *tokenauth.Config, c *Config) { c.Store = st })
	tok := r.apply(token.ActionRead, time.Hour, "devices/${clientid}/#")
	sub, _ := r.newClient("pump-1", 4, false)
	if err := r.connect(sub, persistent(connectPacket(4, "d", tok))); err != nil {
		t.Fatal(err)
	}
	r.subscribe(sub, "devices/pump-1/#")
	r.h.OnSubscribed(sub, packets.Packet{Filters: packets.Subscriptions{{Filter: "devices/pump-1/#", Qos: 1}}}, []byte{1})
	r.offline(sub)
	pub, pw := r.mustConnect("pub", 5, "d", r.apply(token.ActionWrite, time.Hour, "devices/#", "status/#"))
	r.publishAs(pub, pw, "devices/pump-1/cmd", "one", 1, 1)
	r.publishAs(pub, pw, "devices/pump-1/cmd", "two", 1, 2)
	ret := publish("status/pump-1", 1, 3, "up")
	ret.FixedHeader.Retain = true
	if err := r.server.InjectPacket(pub, ret); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 3*time.Second, "the retained message on disk", func() bool { return len(stored(t, st).Retained) == 1 })
	if s := stored(t, st); string(s.Retained[0].Payload) != "up" {
		t.Fatalf("retained %+v", s.Retained)
	}
	st.Close()

	// A new broker on the same state.
	st2 := openStore(t, dir)
	loaded, err := st2.Load()
	if err != nil {
		t.Fatal(err)
	}
	r2 := newRig(t, func(_ *tokenauth.Config, c *Config) { c.Store = st2 })
	r2.h.Restore(loaded)
	if err := r2.server.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r2.server.Close() })
	cl, ok := r2.server.Clients.Get("pump-1")
	if !ok {
		t.Fatal("the session did not come back")
	}
	if n := cl.State.Inflight.Len(); n != 2 {
		t.Fatalf("%d queued messages back, want 2", n)
	}
	if _, ok := cl.State.Subscriptions.Get("devices/pump-1/#"); !ok {
		t.Fatal("the subscription did not come back")
	}
	if !r2.h.OnACLCheck(cl, "devices/pump-1/x", false) || r2.h.OnACLCheck(cl, "devices/pump-2/x", false) {
		t.Fatal("the restored session's rights differ (${clientid} for pump-1)")
	}
	if m, ok := r2.server.Topics.Retained.Get("status/pump-1"); !ok || string(m.Payload) != "up" {
		t.Fatal("the retained message did not come back")
	}
	if q := r2.h.QueueStats(); q.Offline != 1 {
		t.Fatalf("offline %d", q.Offline)
	}
	// Expired while the broker was down or later: discarded.
	r2.h.OnClientExpired(cl)
	if s := stored(t, st2); len(s.Sessions) != 0 || len(s.Messages) != 0 {
		t.Fatalf("an expired session left %d sessions, %d messages", len(s.Sessions), len(s.Messages))
	}
}

// When the messages for persistent sessions cannot be stored, the publish
// is refused, never acknowledged as delivered: v5 0x80, v3.1.1 closed.
func TestPublishRefusedWhenUnstored(t *testing.T) {
	st := openStore(t, t.TempDir())
	r := newRig(t, func(_ *tokenauth.Config, c *Config) { c.Store = st })
	sub, _ := r.newClient("sub", 4, false)
	if err := r.connect(sub, persistent(connectPacket(4, "d", r.apply(token.ActionRead, time.Hour, "a/#")))); err != nil {
		t.Fatal(err)
	}
	r.subscribe(sub, "a/#")
	st.Close() // the disk is gone
	wtok := r.apply(token.ActionWrite, time.Hour, "a/#")
	v5, w5 := r.mustConnect("pub5", 5, "d", wtok)
	if a := r.publishAs(v5, w5, "a/x", "m", 1, 1); a.ReasonCode != 0x80 {
		t.Fatalf("v5 PUBACK 0x%02x, want 0x80", a.ReasonCode)
	}
	if sub.State.Inflight.Len() != 0 {
		t.Fatal("an unstored message was delivered")
	}
	v3, w3 := r.mustConnect("pub3", 4, "d", wtok)
	if err := r.server.InjectPacket(v3, publish("a/x", 1, 1, "m")); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 3*time.Second, "the v3.1.1 publisher to be disconnected", w3.isClosed)
	for _, p := range w3.packets(t) {
		if p.FixedHeader.Type == packets.Puback {
			t.Fatal("an unstored v3.1.1 publish was acknowledged")
		}
	}
}

// A delayed Will goes out when due if its token still grants it; a
// reconnect cancels it.
func TestDelayedWillInTheHook(t *testing.T) {
	r := newRig(t, nil)
	watcher, _ := r.mustConnect("watcher", 5, "d", r.apply(token.ActionRead, time.Hour, "dev/#"))
	watcher.State.Subscriptions.Add("dev/lwt", packets.Subscription{Filter: "dev/lwt", Qos: 1})
	r.server.Topics.Subscribe("watcher", packets.Subscription{Filter: "dev/lwt", Qos: 1})
	will := mqtt.Will{TopicName: "dev/lwt", Payload: []byte("gone"), Qos: 1, WillDelayInterval: 1}
	tok := r.apply(token.ActionReadWrite, time.Hour, "dev/#")
	dev, _ := r.mustConnect("dev", 5, "d", tok)
	if got, _ := r.h.OnWill(dev, will); got.TopicName != "" {
		t.Fatal("Mochi was handed the delayed Will")
	}
	other, _ := r.mustConnect("other", 5, "d", tok)
	r.h.OnWill(other, will)
	r.h.cancelWill("other") // it connected again
	deadline := time.Now().Add(3 * time.Second)
	for watcher.State.Inflight.Len() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := watcher.State.Inflight.Len(); n != 1 {
		t.Fatalf("%d Wills delivered, want 1", n)
	}
	if got, _ := r.h.OnWill(dev, mqtt.Will{TopicName: "elsewhere"}); got.TopicName != "" {
		t.Fatal("a Will outside W went out")
	}
}

func TestPropertiesAndPacketIDs(t *testing.T) {
	p := packets.Properties{PayloadFormat: 1, PayloadFormatFlag: true, MessageExpiryInterval: 60, ContentType: "text/plain",
		ResponseTopic: "r", CorrelationData: []byte{1, 2}, User: []packets.UserProperty{{Key: "k", Val: "v"}}, SubscriptionIdentifier: []int{3}}
	got := decodeProperties(encodeProperties(p))
	if got.PayloadFormat != 1 || !got.PayloadFormatFlag || got.MessageExpiryInterval != 60 || got.ContentType != "text/plain" ||
		got.ResponseTopic != "r" || string(got.CorrelationData) != "\x01\x02" || got.User[0].Val != "v" || got.SubscriptionIdentifier[0] != 3 {
		t.Fatalf("properties round trip: %+v", got)
	}
	if encodeProperties(packets.Properties{}) != nil {
		t.Fatal("empty properties are stored")
	}
	ms := []sessionstore.Message{{PacketID: 2}, {}, {PacketID: 2}, {}}
	assignPacketIDs(ms)
	ids := map[uint16]bool{}
	for _, m := range ms {
		if m.PacketID == 0 || ids[m.PacketID] {
			t.Fatalf("packet IDs %+v", ms)
		}
		ids[m.PacketID] = true
	}
}

// The rest of the storage events: unsubscribes, retained messages outside
// a QoS 1/2 publish (QoS 0, Wills) and their expiry, a QoS 2 delivery the
// client has (PUBREC: a PUBREL is owed after a restart), drops, and shared
// subscribers chosen once for a publish and its records.
func TestStorageEvents(t *testing.T) {
	st := openStore(t, t.TempDir())
	r := newRig(t, func(_ *tokenauth.Config, c *Config) { c.Store = st })
	tok := r.apply(token.ActionReadWrite, time.Hour, "a/#", "s/#")
	sub, _ := r.newClient("sub", 5, false)
	if err := r.connect(sub, persistent(connectPacket(5, "d", tok))); err != nil {
		t.Fatal(err)
	}
	r.h.OnSubscribed(sub, packets.Packet{Filters: packets.Subscriptions{{Filter: "a/#", Qos: 2}, {Filter: "x/#", Qos: 1}}}, []byte{2, 0x87})
	if s := stored(t, st); len(s.Subscriptions) != 1 || s.Subscriptions[0].Filter != "a/#" {
		t.Fatalf("stored %+v: want only the granted one", s.Subscriptions)
	}
	r.h.OnUnsubscribed(sub, packets.Packet{Filters: packets.Subscriptions{{Filter: "a/#"}}})
	if s := stored(t, st); len(s.Subscriptions) != 0 {
		t.Fatal("an unsubscribe left its record")
	}

	r.h.OnRetainMessage(sub, packets.Packet{TopicName: "a/r", Payload: []byte("v"), FixedHeader: packets.FixedHeader{Retain: true}}, 1)
	r.h.OnRetainMessage(sub, packets.Packet{TopicName: "a/gone", Payload: []byte("v")}, 1)
	r.h.OnRetainMessage(sub, packets.Packet{TopicName: "a/gone"}, -1)
	r.h.OnRetainMessage(sub, packets.Packet{TopicName: "a/never"}, 0)
	if s := stored(t, st); len(s.Retained) != 1 || s.Retained[0].Topic != "a/r" {
		t.Fatalf("retained %+v", s.Retained)
	}
	r.h.OnRetainedExpired("a/r")
	if s := stored(t, st); len(s.Retained) != 0 {
		t.Fatal("an expired retained message stayed")
	}

	// QoS 2: the client's PUBREC marks the record; a drop removes it.
	sub.State.Subscriptions.Add("a/#", packets.Subscription{Filter: "a/#", Qos: 2})
	r.server.Topics.Subscribe("sub", packets.Subscription{Filter: "a/#", Qos: 2})
	pub, pw := r.mustConnect("pub", 5, "d", tok)
	r.publishAs(pub, pw, "a/x", "q2", 2, 3)
	inflight := sub.State.Inflight.GetAll(false)
	if len(inflight) != 1 || inflight[0].FixedHeader.Qos != 2 {
		t.Fatalf("QoS 2 delivery %+v", inflight)
	}
	if s := stored(t, st); len(s.Messages) != 1 || s.Messages[0].PacketID != inflight[0].PacketID {
		t.Fatalf("a QoS 2 record must carry its packet ID (a resend after a restart reuses it): %+v", s.Messages)
	}
	r.h.OnPacketRead(sub, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrec}, PacketID: inflight[0].PacketID})
	if s := stored(t, st); len(s.Messages) != 1 || s.Messages[0].State != sessionstore.StatePubrel {
		t.Fatalf("after PUBREC: %+v", s.Messages)
	}
	r.h.OnQosDropped(sub, packets.Packet{PacketID: inflight[0].PacketID})
	if s := stored(t, st); len(s.Messages) != 0 {
		t.Fatal("a dropped delivery kept its record")
	}

	// Shared subscriptions: the member chosen when the record was written is
	// the one Mochi delivers to.
	members := map[string]*mqtt.Client{}
	for _, id := range []string{"m1", "m2"} {
		m, _ := r.newClient(id, 5, false)
		if err := r.connect(m, persistent(connectPacket(5, "d", tok))); err != nil {
			t.Fatal(err)
		}
		sub := packets.Subscription{Filter: "$share/g/s/#", Qos: 1}
		m.State.Subscriptions.Add(sub.Filter, sub)
		r.server.Topics.Subscribe(id, sub)
		members[id] = m
	}
	for i := range 10 {
		r.publishAs(pub, pw, "s/x", "shared", 1, uint16(20+i))
	}
	recs := stored(t, st).Messages
	if len(recs) != 10 {
		t.Fatalf("%d records for 10 shared deliveries", len(recs))
	}
	perMember := map[string]int{}
	for _, rec := range recs {
		perMember[rec.ClientID]++
	}
	for id, m := range members {
		if n := m.State.Inflight.Len(); n != perMember[id] {
			t.Fatalf("%s got %d deliveries and has %d records: the records were written for other members", id, n, perMember[id])
		}
	}

	// A stuck connection is closed under its writer.
	c := r.h.client(pub)
	c.Close(tokenauth.CauseRevoked)
	if !pub.Closed() {
		t.Fatal("Close left the connection open")
	}
}

// While a publisher has publishes held for their writes, its later ones
// (QoS 0 included) wait behind them: subscribers get them, and the
// publisher its acknowledgements, in the order they were sent.
func TestHeldPublishesKeepOrder(t *testing.T) {
	st := openStore(t, t.TempDir())
	r := newRig(t, func(_ *tokenauth.Config, c *Config) { c.Store = st })
	tok := r.apply(token.ActionReadWrite, time.Hour, "o/#")
	durable, _ := r.newClient("durable", 5, false) // a persistent subscriber: publishes to o/ are held
	if err := r.connect(durable, persistent(connectPacket(5, "d", tok))); err != nil {
		t.Fatal(err)
	}
	r.subscribe(durable, "o/#")
	watcher, ww := r.mustConnect("watcher", 5, "d", tok)
	r.subscribe(watcher, "o/#")
	pub, pw := r.mustConnect("pub", 5, "d", tok)
	for i := range 30 {
		qos, id := byte(i%2), uint16(0) // QoS 0 and QoS 1 alternating
		if qos == 1 {
			id = uint16(i)
		}
		if err := r.server.InjectPacket(pub, publish("o/x", qos, id, string(rune('a'+i%26))+string(rune('0'+i/26)))); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	testkit.WaitFor(t, 5*time.Second, "30 deliveries", func() bool {
		got = got[:0]
		for _, p := range ww.packets(t) {
			if p.FixedHeader.Type == packets.Publish {
				got = append(got, string(p.Payload))
			}
		}
		return len(got) == 30
	})
	for i, p := range got {
		if want := string(rune('a'+i%26)) + string(rune('0'+i/26)); p != want {
			t.Fatalf("delivery %d is %q, want %q: %q", i, p, want, got)
		}
	}
	var acks []uint16
	for _, p := range pw.packets(t) {
		if p.FixedHeader.Type == packets.Puback {
			acks = append(acks, p.PacketID)
		}
	}
	if !slices.IsSorted(acks) || len(acks) != 15 {
		t.Fatalf("PUBACKs %v: want 15, in order", acks)
	}
}

// A message Mochi routes to the old client of an ID while it hands the
// session over (after OnSessionEstablish, before it registers the new
// client) is passed on to the new client, if the new client's rights
// cover it; otherwise it is discarded and counted.
func TestDeliveryDuringHandoverPassedOn(t *testing.T) {
	for _, covered := range []bool{true, false} {
		for _, copiedFirst := range []bool{true, false} {
			st := openStore(t, t.TempDir())
			r := newRig(t, func(_ *tokenauth.Config, c *Config) { c.Store = st })
			tok := r.apply(token.ActionRead, time.Hour, "h/#")
			old, _ := r.newClient("dev", 5, false)
			if err := r.connect(old, persistent(connectPacket(5, "d", tok))); err != nil {
				t.Fatal(err)
			}
			r.subscribe(old, "h/#")
			r.offline(old)
			pub, pw := r.mustConnect("pub", 5, "d", r.apply(token.ActionWrite, time.Hour, "h/#"))
			r.publishAs(pub, pw, "h/x", "queued before", 1, 1)
			newTok := tok
			if !covered {
				newTok = r.apply(token.ActionRead, time.Hour, "other/#")
			}
			// Mochi's attachClient for the new connection, up to OnSessionEstablish.
			nw, _ := r.newClient("dev", 5, false)
			pk := persistent(connectPacket(5, "d", newTok))
			pk.Connect.ClientIdentifier, pk.ProtocolVersion = "dev", 5
			nw.ParseConnect("tcp", pk)
			if err := r.h.OnConnect(nw, pk); err != nil {
				t.Fatal(err)
			}
			r.h.OnSessionEstablish(nw, pk)
			// Mochi copies the old client's in-flight table into the new
			// client (inheritClientSession) before or after a publish routed
			// to the old client, still the server's for "dev", is put in it.
			inherit := func() { nw.State.Inflight = old.State.Inflight.Clone() }
			if copiedFirst {
				inherit()
			}
			r.publishAs(pub, pw, "h/x", "during the handover", 1, 2)
			if !copiedFirst {
				inherit()
			}
			r.server.Clients.Add(nw)
			r.h.OnPacketSent(nw, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, SessionPresent: true}, nil)
			var order []string // as Mochi resends them
			for _, p := range nw.State.Inflight.GetAll(false) {
				if p.TopicName == "h/x" {
					order = append(order, string(p.Payload))
				}
			}
			name := fmt.Sprintf("covered %v, copied first %v", covered, copiedFirst)
			if want := []string{"queued before", "during the handover"}; covered && !slices.Equal(order, want) {
				t.Fatalf("%s: the new client's session resends %q, want %q", name, order, want)
			}
			if !covered && (len(order) != 0 || r.h.QueueStats().DroppedOnResume != 2) {
				t.Fatalf("%s: a new client without the rights got %q (dropped %d, want 2)", name, order, r.h.QueueStats().DroppedOnResume)
			}
			if r.h.client(old) != nil {
				t.Fatalf("%s: the old client kept its state after the new one's CONNACK", name)
			}
		}
	}
}
