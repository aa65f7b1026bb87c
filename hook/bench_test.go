package hook

import (
	"errors"
	"fmt"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tokenmq/tokenmq/token"
)

// BenchmarkOnACLCheck is the hot path as Mochi calls it: the client lookup
// by *mqtt.Client plus the check against a 100-resource token (for a
// publish, OnACLCheck and then OnPublish, which judges it), for a
// client on tokenmq's listeners (state in the connection's slot) and on
// others (state in the map, among 1,000).
func BenchmarkOnACLCheck(b *testing.B) {
	r := newRig(b, nil)
	resources := make([]string, 0, 100)
	for i := range 50 {
		resources = append(resources, fmt.Sprintf("fleet/site-%d/+/telemetry", i), fmt.Sprintf("fleet/site-%d/device-%d/cmd/#", i, i))
	}
	tok := r.apply(token.ActionReadWrite, time.Hour, resources...)
	connect := func(id string, bare bool) *mqtt.Client {
		cl, _ := r.newClient(id, 5, bare)
		if err := r.connect(cl, connectPacket(5, "d", tok)); err != nil {
			b.Fatal(err)
		}
		return cl
	}
	for i := range 1000 {
		connect(fmt.Sprint("other-", i), true)
	}
	clients := map[string]*mqtt.Client{"slot": connect("bench-slot", false), "map": connect("bench-map", true)}
	for _, lookup := range []string{"slot", "map"} {
		cl := clients[lookup]
		for _, tc := range []struct {
			name  string
			topic string
			want  bool
		}{
			{"deliver-allowed", "fleet/site-12/device-12/cmd/valve/open", true},
			{"deliver-denied", "fleet/site-99/device-12/cmd/valve/open", false},
		} {
			b.Run(lookup+"/"+tc.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if r.h.OnACLCheck(cl, tc.topic, false) != tc.want {
						b.Fatal("wrong answer")
					}
				}
			})
		}
		// A publish is judged in OnPublish (OnACLCheck answers it true).
		for _, tc := range []struct {
			name  string
			topic string
			want  error
		}{
			{"publish-allowed", "fleet/site-37/pump-9/telemetry", nil},
			{"publish-denied", "fleet/site-99/pump-9/telemetry", packets.ErrRejectPacket},
		} {
			pk := publish(tc.topic, 0, 0, "")
			b.Run(lookup+"/"+tc.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if !r.h.OnACLCheck(cl, tc.topic, true) {
						b.Fatal("OnACLCheck refused a publish")
					}
					if _, err := r.h.OnPublish(cl, pk); !errors.Is(err, tc.want) {
						b.Fatalf("OnPublish: %v, want %v", err, tc.want)
					}
				}
			})
		}
	}
}
