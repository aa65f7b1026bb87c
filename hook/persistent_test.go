package hook

import (
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

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

// deliver does what Mochi's publishToClient does for a QoS 1 delivery to
// cl: a packet ID, the in-flight table, OnQosPublish.
func (r *rig) deliver(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	r.t.Helper()
	out := pk.Copy(false)
	id, err := cl.NextPacketID()
	if err != nil {
		r.t.Fatal(err)
	}
	out.PacketID = uint16(id)
	cl.State.Inflight.Set(out)
	r.h.OnQosPublish(cl, out, out.Created, 0)
	return out
}

// publishFrom runs a client's QoS 1 publish through OnPublish as Mochi
// does (origin, time) and returns the packet Mochi would route.
func (r *rig) publishFrom(cl *mqtt.Client, topic, payload string) (packets.Packet, error) {
	pk := publish(topic, 1, 1, payload)
	pk.Origin, pk.Created = cl.ID, time.Now().Unix()
	return r.h.OnPublish(cl, pk)
}

// An offline persistent session keeps the rights it last held for its
// queue; a QoS 1 message for it is on disk when OnPublish returns (before
// the PUBACK), tied to the delivery Mochi numbers, and gone when it is
// acknowledged; a full queue takes no more.
func TestOfflineQueueInTheHook(t *testing.T) {
	st := openStore(t, t.TempDir())
	r := newRig(t, func(_ *tokenauth.Config, c *Config) { c.Store, c.MaxQueued = st, 2 })
	subTok := r.apply(token.ActionRead, time.Hour, "fleet/#")
	sub, _ := r.newClient("sub", 4, false)
	if err := r.connect(sub, persistent(connectPacket(4, "d", subTok))); err != nil {
		t.Fatal(err)
	}
	r.subscribe(sub, "fleet/+/cmd")
	r.h.OnSubscribed(sub, packets.Packet{Filters: packets.Subscriptions{{Filter: "fleet/+/cmd", Qos: 1}}}, []byte{1})
	if s := stored(t, st); len(s.Sessions) != 1 || len(s.Subscriptions) != 1 || s.Sessions[0].Held[0].Grant.Resources[0] != "fleet/#" {
		t.Fatalf("stored session %+v, subscriptions %+v", s.Sessions, s.Subscriptions)
	}
	r.h.OnDisconnect(sub, errors.New("gone"), false)
	if q := r.h.QueueStats(); q.Offline != 1 || r.h.Sessions() != 0 {
		t.Fatalf("offline %d, connected %d", q.Offline, r.h.Sessions())
	}
	if !r.h.OnACLCheck(sub, "fleet/a/cmd", false) || r.h.OnACLCheck(sub, "other/x", false) || r.h.OnACLCheck(sub, "fleet/a/cmd", true) {
		t.Fatal("an offline session's queue does not follow the rights it last held")
	}

	pub, _ := r.mustConnect("pub", 5, "d", r.apply(token.ActionWrite, time.Hour, "fleet/#"))
	out, err := r.publishFrom(pub, "fleet/a/cmd", "m1")
	if err != nil {
		t.Fatal(err)
	}
	if s := stored(t, st); len(s.Messages) != 1 || string(s.Messages[0].Payload) != "m1" || s.Messages[0].ClientID != "sub" {
		t.Fatalf("OnPublish returned without the message on disk: %+v", s.Messages)
	}
	d := r.deliver(sub, out)
	r.h.OnPublished(pub, out)
	s := stored(t, st)
	if len(s.Messages) != 1 || s.Messages[0].PacketID != d.PacketID {
		t.Fatalf("record not tied to the delivery's packet ID %d: %+v", d.PacketID, s.Messages)
	}
	out2, _ := r.publishFrom(pub, "fleet/b/cmd", "m2")
	r.deliver(sub, out2)
	r.h.OnPublished(pub, out2)
	if q := r.h.QueueStats(); q.Queued != 2 {
		t.Fatalf("queued %d", q.Queued)
	}
	// Full (2): the next is not taken, and is counted.
	if r.h.OnACLCheck(sub, "fleet/c/cmd", false) {
		t.Fatal("a full queue takes more")
	}
	out3, _ := r.publishFrom(pub, "fleet/c/cmd", "m3")
	r.h.OnPublished(pub, out3)
	if q := r.h.QueueStats(); q.DroppedFull != 1 {
		t.Fatalf("dropped as full: %d", q.DroppedFull)
	}
	if s := stored(t, st); len(s.Messages) != 2 {
		t.Fatalf("%d records, want 2 (none for the dropped one)", len(s.Messages))
	}
	// Acknowledged: the record goes. (The acknowledgement of a client's own
	// publish, which Mochi stamps, is not one of these.)
	r.h.OnQosComplete(sub, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: d.PacketID, Created: 1})
	if s := stored(t, st); len(s.Messages) != 2 {
		t.Fatal("the acknowledgement of the client's own publish removed a delivery's record")
	}
	sub.State.Inflight.Delete(d.PacketID)
	r.h.OnQosComplete(sub, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: d.PacketID})
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
	r.h.OnDisconnect(sub, errors.New("gone"), false)
	pub, _ := r.mustConnect("pub", 5, "d", r.apply(token.ActionWrite, time.Hour, "secret/#"))
	for _, p := range []string{"a", "b", "c"} {
		out, _ := r.publishFrom(pub, "secret/x", p)
		d := r.deliver(sub, out)
		if p == "b" { // as sent with an outgoing topic alias: no topic in the packet
			d.TopicName, d.Properties.TopicAlias, d.Properties.TopicAliasFlag = "", 1, true
			sub.State.Inflight.Set(d)
		}
		r.h.OnPublished(pub, out)
	}

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
	r.h.OnDisconnect(thief, errors.New("gone"), false)
	r.subscribe(thief, "secret/#") // (as the owner subscribes again through the thief's parked session)
	for _, p := range []string{"d", "e", "f"} {
		out, _ := r.publishFrom(pub, "secret/x", p)
		d := r.deliver(thief, out)
		if p == "e" {
			d.TopicName, d.Properties.TopicAlias, d.Properties.TopicAliasFlag = "", 1, true
			thief.State.Inflight.Set(d)
		}
		r.h.OnPublished(pub, out)
	}
	back, _ := r.newClient("dev", 5, false)
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
	r.h.OnDisconnect(sub, errors.New("gone"), false)
	pub, _ := r.mustConnect("pub", 5, "d", r.apply(token.ActionWrite, time.Hour, "devices/#", "status/#"))
	for _, p := range []string{"one", "two"} {
		out, _ := r.publishFrom(pub, "devices/pump-1/cmd", p)
		r.deliver(sub, out)
		r.h.OnPublished(pub, out)
	}
	ret := publish("status/pump-1", 1, 9, "up")
	ret.FixedHeader.Retain, ret.Origin, ret.Created = true, "pub", time.Now().Unix()
	if _, err := r.h.OnPublish(pub, ret); err != nil {
		t.Fatal(err)
	}
	state := stored(t, st)
	if len(state.Retained) != 1 || string(state.Retained[0].Payload) != "up" {
		t.Fatalf("retained %+v", state.Retained)
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
	if _, err := r.publishFrom(v5, "a/x", "m"); !errors.Is(err, packets.ErrRejectPacket) {
		t.Fatalf("v5: %v", err)
	}
	if a := w5.waitPacket(t, packets.Puback); a.ReasonCode != 0x80 {
		t.Fatalf("v5 PUBACK 0x%02x", a.ReasonCode)
	}
	v3, w3 := r.mustConnect("pub3", 4, "d", wtok)
	if _, err := r.publishFrom(v3, "a/x", "m"); !errors.Is(err, packets.ErrRejectPacket) || !w3.isClosed() {
		t.Fatalf("v3.1.1: %v, closed %v", err, w3.isClosed())
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
	r.subscribe(sub, "a/#")
	pub, _ := r.mustConnect("pub", 5, "d", tok)
	pk := publish("a/x", 2, 3, "q2")
	pk.Origin, pk.Created = "pub", time.Now().Unix()
	out, _ := r.h.OnPublish(pub, pk)
	d := r.deliver(sub, out)
	r.h.OnPublished(pub, out)
	r.h.OnPacketRead(sub, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrec}, PacketID: d.PacketID})
	if s := stored(t, st); len(s.Messages) != 1 || s.Messages[0].State != sessionstore.StatePubrel {
		t.Fatalf("after PUBREC: %+v", s.Messages)
	}
	r.h.OnQosDropped(sub, packets.Packet{PacketID: d.PacketID})
	if s := stored(t, st); len(s.Messages) != 0 {
		t.Fatal("a dropped delivery kept its record")
	}

	// Shared subscriptions: the members chosen when the records were written
	// are the ones Mochi delivers to.
	for _, id := range []string{"m1", "m2"} {
		m, _ := r.newClient(id, 5, false)
		if err := r.connect(m, persistent(connectPacket(5, "d", tok))); err != nil {
			t.Fatal(err)
		}
		r.server.Topics.Subscribe(id, packets.Subscription{Filter: "$share/g/s/#", Qos: 1})
	}
	spk := publish("s/x", 1, 4, "shared")
	spk.Origin, spk.Created = "pub", time.Now().Unix()
	sout, _ := r.h.OnPublish(pub, spk)
	chosen := stored(t, st).Messages
	if len(chosen) != 1 {
		t.Fatalf("%d records for one shared delivery", len(chosen))
	}
	subs := r.server.Topics.Subscribers("s/x")
	subs = r.h.OnSelectSubscribers(subs, sout)
	if _, ok := subs.SharedSelected[chosen[0].ClientID]; !ok || len(subs.SharedSelected) != 1 {
		t.Fatalf("Mochi would deliver to %v, the record is for %s", subs.SharedSelected, chosen[0].ClientID)
	}
	r.h.OnPublished(pub, sout) // not delivered after all: the record goes
	if s := stored(t, st); len(s.Messages) != 0 {
		t.Fatal("an undelivered record stayed")
	}

	// A stuck connection is closed under its writer.
	c := r.h.client(pub)
	c.Close(tokenauth.CauseRevoked)
	if !pub.Closed() {
		t.Fatal("Close left the connection open")
	}
}
