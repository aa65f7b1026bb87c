//go:build cgo

package main

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/internal/tokentest"
	"github.com/tokenmq/tokenmq/mosqauth"
	"github.com/tokenmq/tokenmq/token"
	"github.com/tokenmq/tokenmq/tokenauth"
)

// benchBroker is mosqauth.Broker for a test binary: shim.c's own parts
// (the decision cache's generation) are real, Mosquitto's are not there.
type benchBroker struct{}

func (benchBroker) Publish(string, string, []byte, []tokenauth.Property) {}
func (benchBroker) Kick(string)                                          {}
func (benchBroker) ClientID(mosqauth.Ref) string                         { return "" }
func (benchBroker) Log(slog.Level, string)                               {}
func (benchBroker) Wake()                                                {}

// setUp makes the package's plugin over an in-process token service, with
// one connected client (pointer ref) holding a token of 100 resources.
func setUp(tb testing.TB) mosqauth.Ref {
	svc := tokentest.NewService(tb, time.Time{}, token.ServiceConfig{Now: time.Now})
	p, err := mosqauth.NewWith(mosqauth.Options{InstanceID: "inst-a", AllowPlain: true}, benchBroker{}, svc, svc)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close(); plugin = nil })
	var rs []string
	for j := range 99 {
		rs = append(rs, fmt.Sprintf("fleet/site-%d/+/telemetry/7", j))
	}
	rs = append(rs, "bench/#")
	tok, _, err := svc.Apply(tb.Context(), token.ApplyRequest{InstanceID: "inst-a", AccessKeyID: "AK1", Resources: rs,
		Actions: token.ActionReadWrite, ExpireTime: time.Now().Add(time.Hour)})
	if err != nil {
		tb.Fatal(err)
	}
	ref := mosqauth.Ref(0x1000)
	if res := p.BasicAuth(ref, mosqauth.ConnInfo{ClientID: "dev", Username: []byte("d"), Password: []byte(tok), HasPassword: true, ProtocolVersion: 4}); res != mosqauth.Allow {
		tb.Fatalf("connect: %v", res)
	}
	plugin = p
	return ref
}

// An ACL check through shim.c answers as mosqauth does.
func TestACLCheckThroughC(t *testing.T) {
	ref := setUp(t)
	for _, tc := range []struct {
		access mosqauth.Access
		topic  string
		want   int
	}{
		{mosqauth.Read, "bench/fan", 3}, {mosqauth.Read, "fleet/site-3/x/telemetry/7", 3}, {mosqauth.Read, "other", 0},
		{mosqauth.Write, "bench/x", 3}, {mosqauth.Subscribe, "bench/#", 3}, {mosqauth.Subscribe, "#", 0},
	} {
		if got := benchACL(ref, tc.access, tc.topic, 3); got != tc.want {
			t.Errorf("access %d %q: %d of 3 allowed, want %d", tc.access, tc.topic, got, tc.want)
		}
	}
	plugin.Disconnect(ref)
	if got := benchACL(ref, mosqauth.Read, "bench/fan", 1); got != 0 {
		t.Fatal("a disconnected client's check allowed")
	}
}

// BenchmarkACLCheck is the plugin's cost per ACL check as Mosquitto makes
// it (C into Go and back), for a connected client whose token has 100
// resources: every delivery, publish and subscription pays it once.
func BenchmarkACLCheck(b *testing.B) {
	ref := setUp(b)
	b.ReportAllocs()
	if got := benchACL(ref, mosqauth.Read, "bench/fan", b.N); got != b.N {
		b.Fatalf("%d of %d allowed", got, b.N)
	}
}
