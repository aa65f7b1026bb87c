package hook

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/tokenmq/tokenmq/acl"
	"github.com/tokenmq/tokenmq/token"
)

type nopFeed struct{}

func (nopFeed) Feed(ctx context.Context, _ string, after uint64, _ time.Duration) (token.FeedPage, error) {
	<-ctx.Done()
	return token.FeedPage{Next: after}, ctx.Err()
}

// BenchmarkOnACLCheck is the hot path as Mochi calls it: the session
// lookup by *mqtt.Client plus the check against a 100-resource token.
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
	cl := server.NewClient(nil, "tcp", "bench", false)
	cl.Properties.ProtocolVersion = 5
	h.sessions.Store(cl, newSession(cl, Credentials{Form: FormPlain}, []*held{{g: g, typ: token.ActionReadWrite}}))
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
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if h.OnACLCheck(cl, tc.topic, tc.write) != tc.want {
					b.Fatal("wrong answer")
				}
			}
		})
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
