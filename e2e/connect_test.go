package e2e

import (
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/config"
	"github.com/tokenmq/tokenmq/internal/testkit"
)

// SPEC §3.1: both credential forms and every row of the CONNACK table, for
// MQTT 5 (reason codes) and 3.1.1 (return codes).
func TestConnectCredentials(t *testing.T) { testConnectCredentials(t, startEnv(t)) }

func testConnectCredentials(t *testing.T, e *env) {
	rTok := e.apply("a/#", "R", time.Hour)
	wTok := e.apply("b/#", "W", time.Hour)
	rwTok := e.apply("c/#", "R,W", time.Hour)
	revoked := e.apply("d/#", "R,W", time.Hour)
	e.revoke(revoked)
	apsara := "Token|" + adminID + "|mqtt-local"
	forged := rwTok[:40] + "AAAA" + rwTok[44:]

	for _, tc := range []struct {
		name       string
		user, pass string
		v5, v3     byte
	}{
		{"apsara R and W", apsara, "R|" + rTok + "|W|" + wTok, 0x00, 0x00},
		{"apsara W first", apsara, "W|" + wTok + "|R|" + rTok, 0x00, 0x00},
		{"apsara RW", apsara, "RW|" + rwTok, 0x00, 0x00},
		{"apsara R token given as R of an R,W token", apsara, "R|" + rwTok, 0x00, 0x00},
		{"plain form", "device-1", rwTok, 0x00, 0x00},
		{"no password", "device-1", "", 0x86, 0x04},
		{"malformed password", apsara, "R|" + rTok + "|W", 0x86, 0x04},
		{"malformed username", "Token|" + adminID, "R|" + rTok, 0x86, 0x04},
		{"unknown token", "device-1", "AQAAAAHSOnBC1MlXIJQFnXksMS-GAAABogX_oYEceAi-dTnN4fHltl1m5Je4GlqeSwPukhfglEjAGi98Ww", 0x86, 0x04},
		{"forged token", "device-1", forged, 0x86, 0x04},
		{"garbage token", "device-1", "hello", 0x86, 0x04},
		{"revoked token", "device-1", revoked, 0x86, 0x04},
		{"one bad token of two", apsara, "R|" + rTok + "|W|" + forged, 0x86, 0x04},
		{"wrong instance", "Token|" + adminID + "|other-instance", "RW|" + rwTok, 0x87, 0x05},
		{"wrong access key", "Token|AKSOMEONEELSE|mqtt-local", "RW|" + rwTok, 0x87, 0x05},
		{"type not covered: R token as W", apsara, "W|" + rTok, 0x87, 0x05},
		{"type not covered: W token as RW", apsara, "RW|" + wTok, 0x87, 0x05},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c5, code := connect5(t, e.mqtt, "v5-"+tc.name, tc.user, tc.pass)
			if want := e.refused5(tc.v5); code != want || (code == 0) != (c5 != nil) {
				t.Errorf("MQTT 5: CONNACK 0x%02x, want 0x%02x", code, want)
			}
			c3, code := connect3(t, e.mqtt, "v3-"+tc.name, tc.user, tc.pass)
			if want := e.refused3(tc.v3); code != want || (code == 0) != (c3 != nil) {
				t.Errorf("MQTT 3.1.1: CONNACK 0x%02x, want 0x%02x", code, want)
			}
		})
	}
}

func TestExpiredTokenRefused(t *testing.T) { testExpiredTokenRefused(t, startEnv(t, shortTTL)) }

func testExpiredTokenRefused(t *testing.T, e *env) {
	tok := e.apply("a", "R", time.Second)
	mustConnect5(t, e.mqtt, "early", "d", tok) // valid now, and cached
	testkit.WaitFor(t, 3*time.Second, "the token to be refused after its expiry", func() bool {
		_, code := connect5(t, e.mqtt, "late", "d", tok)
		return code == e.refused5(0x86)
	})
}

func TestPlainFormCanBeTurnedOff(t *testing.T) {
	testPlainFormCanBeTurnedOff(t, startEnv(t, func(c *config.Config) { c.Broker.AllowPlainToken = false }))
}

func testPlainFormCanBeTurnedOff(t *testing.T, e *env) {
	tok := e.apply("a/#", "R,W", time.Hour)
	if _, code := connect5(t, e.mqtt, "plain", "device", tok); code != e.refused5(0x86) {
		t.Fatalf("plain form when off: 0x%02x, want 0x%02x", code, e.refused5(0x86))
	}
	mustConnect5(t, e.mqtt, "apsara", "Token|"+adminID+"|mqtt-local", "RW|"+tok)
}

// SPEC §3.1: an empty password with the password flag set is bad
// credentials: 0x86 (v5), 0x04 (v3.1.1), not a protocol error.
func TestEmptyPasswordIsBadCredentials(t *testing.T) {
	testEmptyPasswordIsBadCredentials(t, startEnv(t))
}

func testEmptyPasswordIsBadCredentials(t *testing.T, e *env) {
	for v, want := range map[byte]byte{5: e.refused5(0x86), 4: e.refused3(0x04)} {
		code, err := rawConnectEmptyPassword(e.mqtt, v)
		if err != nil || code != want {
			t.Errorf("protocol %d: CONNACK 0x%02x (%v), want 0x%02x", v, code, err, want)
		}
	}
}
