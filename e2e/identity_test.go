package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/api"
)

// applyBound issues a token bound to client IDs.
func (e *env) applyBound(resources, actions, clientIDs string, ttl time.Duration) string {
	e.t.Helper()
	r, err := e.api.ApplyToken(context.Background(), api.ApplyTokenRequest{InstanceID: "mqtt-local",
		Resources: strings.Split(resources, ","), Actions: actions, ExpireTime: time.Now().Add(ttl),
		ClientIDs: strings.Split(clientIDs, ",")})
	if err != nil {
		e.t.Fatalf("ApplyToken: %v", err)
	}
	return r.Token
}

// SPEC §3.7: a token bound to client IDs admits those (exactly or by
// prefix) and refuses others with 0x85 (v5) / 0x02 (v3.1.1).
func TestClientBoundTokenE2E(t *testing.T) { testClientBoundTokenE2E(t, startEnv(t)) }

func testClientBoundTokenE2E(t *testing.T, e *env) {
	tok := e.applyBound("dev/#", "R,W", "pump-1,GID_pump@@@*", time.Hour)
	for _, id := range []string{"pump-1", "GID_pump@@@7"} {
		mustConnect5(t, e.mqtt, id, "d", tok)
		if c, code := connect3(t, e.mqtt, "x-"+id, "d", tok); c != nil || code != e.refused3(0x02) {
			t.Fatalf("v3.1.1 x-%s (not named): %v 0x%02x, want refused 0x%02x", id, c != nil, code, e.refused3(0x02))
		}
	}
	if c, code := connect5(t, e.mqtt, "valve-1", "d", tok); c != nil || code != e.refused5(0x85) {
		t.Fatalf("v5 valve-1: 0x%02x, want 0x%02x", code, e.refused5(0x85))
	}
	if c, code := connect3(t, e.mqtt, "GID_pump@@@8", "d", tok); c == nil || code != 0 {
		t.Fatalf("v3.1.1 by prefix: 0x%02x", code)
	}
}

// ${clientid} gives each device its own subtree, in v5 and v3.1.1.
func TestClientIDPlaceholderE2E(t *testing.T) { testClientIDPlaceholderE2E(t, startEnv(t)) }

func testClientIDPlaceholderE2E(t *testing.T, e *env) {
	tok := e.apply("devices/${clientid}/#", "R,W", time.Hour)
	p1 := mustConnect5(t, e.mqtt, "pump-1", "d", tok)
	if code := p1.subscribe("devices/pump-1/#", 1); code != 1 {
		t.Fatalf("own subtree: SUBACK 0x%02x", code)
	}
	if code := p1.subscribe("devices/pump-2/#", 1); code != 0x87 {
		t.Fatalf("another device's subtree: SUBACK 0x%02x, want 0x87", code)
	}
	if code := p1.subscribe("devices/+/cmd", 1); code != 0x87 {
		t.Fatalf("every device's cmd: SUBACK 0x%02x, want 0x87", code)
	}
	if code := p1.publish("devices/pump-2/cmd", 1, false, "x"); code != 0x87 {
		t.Fatalf("publish to another device: 0x%02x, want 0x87", code)
	}
	p2, _ := connect3(t, e.mqtt, "pump-2", "d", tok)
	if p2 == nil {
		t.Fatal("pump-2 refused")
	}
	if code := p2.subscribe("devices/pump-1/#", 1); code != 0x80 {
		t.Fatalf("v3.1.1 another device's subtree: SUBACK 0x%02x, want 0x80", code)
	}
	if err := p2.publish("devices/pump-1/cmd", 1, "from pump-2"); err != nil {
		t.Fatal(err)
	}
	if err := p2.publish("devices/pump-2/status", 1, "mine"); err != nil {
		t.Fatal(err)
	}
	if code := p1.publish("devices/pump-1/cmd", 1, false, "own"); code != 0 {
		t.Fatalf("own publish: 0x%02x", code)
	}
	p1.waitMessage("devices/pump-1/cmd", 5*time.Second)
	neverReceived(t, p1.received(), func(m message) bool { return m.payload == "from pump-2" })
	// A client ID that cannot stand as a level gets nothing from the resource.
	odd := mustConnect5(t, e.mqtt, "a/b", "d", tok)
	if code := odd.subscribe("devices/a/b/#", 1); code != 0x87 {
		t.Fatalf("client ID with '/': SUBACK 0x%02x, want 0x87", code)
	}
}

// A token bound elsewhere cannot take a device's client ID over: the owner
// stays connected and keeps receiving.
func TestTakeoverByTokenBoundElsewhereRefused(t *testing.T) {
	testTakeoverByTokenBoundElsewhereRefused(t, startEnv(t))
}

func testTakeoverByTokenBoundElsewhereRefused(t *testing.T, e *env) {
	owner := mustConnect5(t, e.mqtt, "owner", "d", e.apply("dev/#", "R,W", time.Hour))
	if code := owner.subscribe("dev/in", 1); code != 1 {
		t.Fatalf("SUBACK 0x%02x", code)
	}
	thief := e.applyBound("dev/#", "R,W", "thief-*", time.Hour)
	if c, code := connect5(t, e.mqtt, "owner", "d", thief); c != nil || code != e.refused5(0x85) {
		t.Fatalf("takeover with a token bound elsewhere: 0x%02x, want 0x%02x", code, e.refused5(0x85))
	}
	if c, code := connect3(t, e.mqtt, "owner", "d", thief); c != nil || code != e.refused3(0x02) {
		t.Fatalf("v3.1.1 takeover with a token bound elsewhere: 0x%02x, want 0x%02x", code, e.refused3(0x02))
	}
	pub := mustConnect5(t, e.mqtt, "pub", "d", e.apply("dev/#", "W", time.Hour))
	pub.publish("dev/in", 1, false, "still mine")
	if m := owner.waitMessage("dev/in", 5*time.Second); m.payload != "still mine" {
		t.Fatalf("owner got %q", m.payload)
	}
	select {
	case <-owner.closed:
		t.Fatal("the owner was disconnected")
	default:
	}
}
