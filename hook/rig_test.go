package hook

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tokenmq/tokenmq/internal/testkit"
	"github.com/tokenmq/tokenmq/internal/tokentest"
	"github.com/tokenmq/tokenmq/token"
	"github.com/tokenmq/tokenmq/tokenauth"
)

// The hook's tests drive Mochi's callbacks directly, as Mochi's own hook
// tests do (bare clients and packets), over a real Authority and a real
// token service; a client's connection is a wire that records what the
// broker writes to it.

const inst = "inst-a"

// wire is the client end of a connection: it records every byte the broker
// writes and decodes them into packets.
type wire struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	closed  chan struct{}
	once    sync.Once
	version byte
}

func newWire(version byte) *wire { return &wire{closed: make(chan struct{}), version: version} }

func (w *wire) Read([]byte) (int, error) { <-w.closed; return 0, io.EOF }
func (w *wire) Write(p []byte) (int, error) {
	select {
	case <-w.closed:
		return 0, net.ErrClosed
	default:
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}
func (w *wire) Close() error                     { w.once.Do(func() { close(w.closed) }); return nil }
func (w *wire) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1883} }
func (w *wire) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000} }
func (w *wire) SetDeadline(time.Time) error      { return nil }
func (w *wire) SetReadDeadline(time.Time) error  { return nil }
func (w *wire) SetWriteDeadline(time.Time) error { return nil }

func (w *wire) isClosed() bool {
	select {
	case <-w.closed:
		return true
	default:
		return false
	}
}

// packets decodes everything written so far.
func (w *wire) packets(t *testing.T) []packets.Packet {
	t.Helper()
	w.mu.Lock()
	data := bytes.Clone(w.buf.Bytes())
	w.mu.Unlock()
	r := bytes.NewReader(data)
	var out []packets.Packet
	for r.Len() > 0 {
		hb, _ := r.ReadByte()
		pk := packets.Packet{ProtocolVersion: w.version}
		if err := pk.FixedHeader.Decode(hb); err != nil {
			t.Fatalf("fixed header: %v", err)
		}
		n, _, err := packets.DecodeLength(r)
		if err != nil {
			t.Fatalf("length: %v", err)
		}
		pk.FixedHeader.Remaining = n
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			t.Fatalf("body: %v", err)
		}
		decode := map[byte]func([]byte) error{
			packets.Connack: pk.ConnackDecode, packets.Publish: pk.PublishDecode, packets.Puback: pk.PubackDecode,
			packets.Pubrec: pk.PubrecDecode, packets.Disconnect: pk.DisconnectDecode, packets.Auth: pk.AuthDecode,
			packets.Suback: pk.SubackDecode, packets.Unsuback: pk.UnsubackDecode,
		}[pk.FixedHeader.Type]
		if decode == nil {
			t.Fatalf("unexpected packet type %d", pk.FixedHeader.Type)
		}
		if err := decode(body); err != nil {
			t.Fatalf("decode type %d: %v", pk.FixedHeader.Type, err)
		}
		out = append(out, pk)
	}
	return out
}

// waitPacket waits for a packet of type typ and returns it.
func (w *wire) waitPacket(t *testing.T, typ byte) packets.Packet {
	t.Helper()
	var got packets.Packet
	testkit.WaitFor(t, 3*time.Second, "a packet of type "+packets.PacketNames[typ], func() bool {
		for _, pk := range w.packets(t) {
			if pk.FixedHeader.Type == typ {
				got = pk
				return true
			}
		}
		return false
	})
	return got
}

// noticeOn returns the PUBLISH on topic, if one was written.
func (w *wire) noticeOn(t *testing.T, topic string) (packets.Packet, bool) {
	for _, pk := range w.packets(t) {
		if pk.FixedHeader.Type == packets.Publish && pk.TopicName == topic {
			return pk, true
		}
	}
	return packets.Packet{}, false
}

// switchable is the token service as the Authority's Validator and Feed,
// with an outage switch.
type switchable struct {
	*token.Service
	down atomic.Bool
}

func (s *switchable) Validate(ctx context.Context, i, tok string) (token.Grant, error) {
	if s.down.Load() {
		return token.Grant{}, errors.New("connection refused")
	}
	return s.Service.Validate(ctx, i, tok)
}

type rig struct {
	t      testing.TB
	ts     *tokentest.Service
	val    *switchable
	auth   *tokenauth.Authority
	h      *Hook
	server *mqtt.Server
}

// newRig builds Mochi, a started Authority for inst over a fresh token
// service, and the hook, registered alone. edit changes either
// configuration before they are built.
func newRig(t testing.TB, edit func(*tokenauth.Config, *Config)) *rig {
	t.Helper()
	ts := tokentest.NewService(t, time.Now(), token.ServiceConfig{Instances: []string{inst, "inst-b"}, MinTTL: time.Millisecond})
	val := &switchable{Service: ts.Service}
	acfg := tokenauth.Config{InstanceID: inst, Validator: val, Feed: ts.Service, AllowPlain: true,
		FeedWait: time.Second, Logger: slog.New(slog.DiscardHandler)}
	hcfg := Config{Logger: slog.New(slog.DiscardHandler)}
	if edit != nil {
		edit(&acfg, &hcfg)
	}
	auth, err := tokenauth.New(acfg)
	if err != nil {
		t.Fatal(err)
	}
	server := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler)})
	h, err := New(server, auth, hcfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := server.AddHook(h, nil); err != nil {
		t.Fatal(err)
	}
	auth.Start()
	h.Start()
	t.Cleanup(func() { h.Close(); auth.Close() })
	return &rig{t: t, ts: ts, val: val, auth: auth, h: h, server: server}
}

func (r *rig) apply(actions token.Actions, ttl time.Duration, resources ...string) string {
	r.t.Helper()
	return r.applyBound(nil, actions, ttl, resources...)
}

// applyBound issues a token bound to client IDs.
func (r *rig) applyBound(clientIDs []string, actions token.Actions, ttl time.Duration, resources ...string) string {
	r.t.Helper()
	tok, _, err := r.ts.Apply(context.Background(), token.ApplyRequest{InstanceID: inst, AccessKeyID: "AK1",
		Resources: resources, ClientIDs: clientIDs, Actions: actions, ExpireTime: r.ts.Clock.Now().Add(ttl)})
	if err != nil {
		r.t.Fatal(err)
	}
	return tok
}

func (r *rig) revoke(tok string) {
	r.t.Helper()
	if _, err := r.ts.Revoke(context.Background(), inst, tok); err != nil {
		r.t.Fatal(err)
	}
}

// newClient is a Mochi client of protocol version v on a wire (wrapped in
// the slot-carrying Conn unless bare).
func (r *rig) newClient(id string, v byte, bare bool) (*mqtt.Client, *wire) {
	w := newWire(v)
	var c net.Conn = WrapConn(w)
	if bare {
		c = w
	}
	cl := r.server.NewClient(c, "tcp", id, false)
	cl.Properties.ProtocolVersion = v
	return cl, w
}

// connectPacket is a CONNECT with the given credentials.
func connectPacket(v byte, user, pass string) packets.Packet {
	return packets.Packet{ProtocolVersion: v, Connect: packets.ConnectParams{
		ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30,
		Username: []byte(user), UsernameFlag: user != "", Password: []byte(pass), PasswordFlag: pass != ""}}
}

// connect runs CONNECT through the hook as Mochi's attachClient does
// (OnConnect, OnConnectAuthenticate, OnSessionEstablish, the session
// handed over from an older client of the ID, the client registered, the
// CONNACK, OnSessionEstablished); it returns OnConnect's error.
func (r *rig) connect(cl *mqtt.Client, pk packets.Packet) error {
	pk.Connect.ClientIdentifier, pk.ProtocolVersion = cl.ID, cl.Properties.ProtocolVersion
	cl.ParseConnect("tcp", pk)
	if err := r.h.OnConnect(cl, pk); err != nil {
		return err
	}
	if !r.h.OnConnectAuthenticate(cl, pk) {
		r.t.Fatal("OnConnect accepted, OnConnectAuthenticate refused")
	}
	r.h.OnSessionEstablish(cl, pk)
	present := false
	if old, ok := r.server.Clients.Get(cl.ID); ok && old != cl && !pk.Connect.Clean {
		present = true
		cl.State.Inflight = old.State.Inflight.Clone()
		for _, sub := range old.State.Subscriptions.GetAll() {
			r.server.Topics.Subscribe(cl.ID, sub)
			cl.State.Subscriptions.Add(sub.Filter, sub)
		}
		old.State.Subscriptions = mqtt.NewSubscriptions()
	}
	r.server.Clients.Add(cl)
	r.h.OnPacketSent(cl, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, SessionPresent: present}, nil)
	r.h.OnSessionEstablished(cl, pk)
	return nil
}

// persistent makes a CONNECT ask for a persistent session.
func persistent(pk packets.Packet) packets.Packet {
	pk.Connect.Clean = false
	if pk.ProtocolVersion >= 5 {
		pk.Properties.SessionExpiryInterval, pk.Properties.SessionExpiryIntervalFlag = 3600, true
	}
	return pk
}

// mustConnect connects a client of version v with credentials, or fails.
func (r *rig) mustConnect(id string, v byte, user, pass string) (*mqtt.Client, *wire) {
	r.t.Helper()
	cl, w := r.newClient(id, v, false)
	if err := r.connect(cl, connectPacket(v, user, pass)); err != nil {
		r.t.Fatalf("connect %s: %v", id, err)
	}
	return cl, w
}

// subscribe adds a QoS 1 subscription the way Mochi records one.
func (r *rig) subscribe(cl *mqtt.Client, filter string) {
	sub := packets.Subscription{Filter: filter, Qos: 1}
	cl.State.Subscriptions.Add(filter, sub)
	r.server.Topics.Subscribe(cl.ID, sub)
}

func publish(topic string, qos byte, id uint16, payload string) packets.Packet {
	return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos}, TopicName: topic, PacketID: id, Payload: []byte(payload)}
}
