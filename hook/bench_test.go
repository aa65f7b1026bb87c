package hook

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tokenmq/tokenmq/acl"
	"github.com/tokenmq/tokenmq/token"
)

type nopFeed struct{}

func (nopFeed) Feed(ctx context.Context, _ string, after uint64, _ time.Duration) (token.FeedPage, error) {
	<-ctx.Done()
	return token.FeedPage{Next: after}, ctx.Err()
}

// BenchmarkOnACLCheck is the hot path as Mochi calls it: the session
// lookup by *mqtt.Client plus the check against a 100-resource token, for a
// client on tokenmq's listeners (session in the connection's slot) and on
// others (session in the map, among 1,000).
func BenchmarkOnACLCheck(b *testing.B) {
	server := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler)})
	h, err := New(server, Config{InstanceID: "inst", Validator: &fakeValidator{}, Feed: nopFeed{}})
	if err != nil {
		b.Fatal(err)
	}
	resources := make([]string, 0, 100)
	for i := range 50 {
		resources = append(resources, fmt.Sprintf("fleet/site-%d/+/telemetry", i), fmt.Sprintf("fleet/site-%d/device-%d/cmd/#", i, i))
	}
	compiled, err := acl.Compile(resources)
	if err != nil {
		b.Fatal(err)
	}
	g := &grant{Grant: token.Grant{Resources: resources, Actions: token.ActionReadWrite}, acl: compiled}
	connect := func(conn net.Conn, id string) *mqtt.Client {
		cl := server.NewClient(conn, "tcp", id, false)
		cl.Properties.ProtocolVersion = 5
		s := newSession(cl, Credentials{Form: FormPlain}, []*held{{g: g, typ: token.ActionReadWrite}})
		h.sessions.Store(cl, s)
		if sl := slot(cl); sl != nil {
			sl.Store(s)
		}
		return cl
	}
	for i := range 1000 {
		connect(nil, fmt.Sprint("other-", i))
	}
	a, c := net.Pipe()
	b.Cleanup(func() { a.Close(); c.Close() })
	clients := map[string]*mqtt.Client{"slot": connect(WrapConn(a), "bench-slot"), "map": connect(nil, "bench-map")}
	for _, lookup := range []string{"slot", "map"} {
		cl := clients[lookup]
		for _, tc := range []struct {
			name  string
			topic string
			write bool
			want  bool
		}{
			{"publish-allowed", "fleet/site-37/pump-9/telemetry", true, true},
			{"deliver-allowed", "fleet/site-12/device-12/cmd/valve/open", false, true},
			{"publish-denied", "fleet/site-99/pump-9/telemetry", true, false},
		} {
			b.Run(lookup+"/"+tc.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if h.OnACLCheck(cl, tc.topic, tc.write) != tc.want {
						b.Fatal("wrong answer")
					}
				}
			})
		}
	}
}

// BenchmarkCacheHit is a CONNECT's validation when the token is cached.
func BenchmarkCacheHit(b *testing.B) {
	v := &fakeValidator{grants: map[string]token.Grant{}}
	tok := "AQAAAAHSOnBC1MlXIJQFnXksMS-GAAABogX_oYEceAi-dTnN4fHltl1m5Je4GlqeSwPukhfglEjAGi98Ww"
	v.grants[tok] = token.Grant{TokenID: token.ID{1}, InstanceID: "inst", Actions: token.ActionRead,
		Resources: []string{"a/#"}, ExpireTime: time.Now().Add(time.Hour)}
	c, err := NewCache(v, "inst", CacheConfig{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Lookup(context.Background(), tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseCredentials is the CONNECT's username/password parsing.
func BenchmarkParseCredentials(b *testing.B) {
	user, pass := []byte("Token|AK1|inst"), []byte("R|"+tok1+"|W|"+tok2)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseCredentials(user, pass, true, true); err != nil {
			b.Fatal(err)
		}
	}
}

// Backpressure pauses a publisher only for a subscriber that is draining.
func TestOnPublishDroppedBackpressure(t *testing.T) {
	server := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler)})
	h, err := New(server, Config{InstanceID: "inst", Validator: &fakeValidator{}, Feed: nopFeed{},
		BackpressurePause: 30 * time.Millisecond, BackpressureMinRate: 1000})
	if err != nil {
		t.Fatal(err)
	}
	cl := server.NewClient(nil, "tcp", "sub", false)
	s := newSession(cl, Credentials{Form: FormPlain}, nil)
	h.sessions.Store(cl, s)
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}}
	timed := func() time.Duration {
		t0 := time.Now()
		h.OnPublishDropped(cl, pk)
		return time.Since(t0)
	}
	// A stalled subscriber: nothing sent for a while. No pause.
	s.draining(time.Now().Add(-time.Second), 1000) // first window
	if d := timed(); d > 20*time.Millisecond {
		t.Fatalf("paused %v for a stalled subscriber", d)
	}
	// A draining one: 100 packets in the last 60 ms (>1000/s). Pause.
	s.drainMu.Lock()
	s.drainAt, s.drainCount = time.Now().Add(-60*time.Millisecond), s.sent.Load()
	s.drainMu.Unlock()
	s.sent.Add(100)
	if d := timed(); d < 30*time.Millisecond {
		t.Fatalf("paused only %v for a draining subscriber", d)
	}
	// QoS 1 deliveries are never paused for (they have their own flow control).
	pk.FixedHeader.Qos = 1
	if d := timed(); d > 20*time.Millisecond {
		t.Fatalf("paused %v for a QoS 1 drop", d)
	}
	if h.Dropped() != 3 {
		t.Fatalf("Dropped() = %d, want 3", h.Dropped())
	}
}
