package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/tokenmq/tokenmq/internal/mosqtest"
	"github.com/tokenmq/tokenmq/internal/testkit"
)

// SPEC §3.5 outages, for Mosquitto + plugin: with the token service
// unreachable, connected clients stay, cached tokens reconnect, unknown
// ones are refused (Mosquitto lets a plugin only close the socket for "try
// again later"); when it is reachable again (restarted, too), the plugin
// catches up on a revocation it missed within a second.
func TestMosquittoPluginOutageAndCatchUp(t *testing.T) {
	e := startMosquittoEnv(t, nil)
	cached := e.apply("dev/#", "R,W", time.Hour)
	revokedLater := e.apply("dev/#", "R,W", time.Hour)
	unseen := e.apply("dev/#", "R,W", time.Hour)
	dev := mustConnect5(t, e.mqtt, "dev", "d", cached)
	victim := mustConnect5(t, e.mqtt, "victim", "d", revokedLater)

	e.px.setCut(true)
	if c := dev.publish("dev/during-outage", 1, false, "x"); c != 0 {
		t.Fatalf("connected client's publish during the outage: 0x%02x", c)
	}
	again := mustConnect5(t, e.mqtt, "dev-again", "d", cached) // a cached positive answer
	again.c.Disconnect(&paho.Disconnect{})
	if _, code := connect5(t, e.mqtt, "unseen", "d", unseen); code != e.refused5(0x88) {
		t.Fatalf("never-seen token during the outage: 0x%02x, want 0x%02x", code, e.refused5(0x88))
	}
	if _, code := connect3(t, e.mqtt, "unseen3", "d", unseen); code != e.refused3(0x03) {
		t.Fatalf("never-seen token during the outage (v3.1.1): 0x%02x, want 0x%02x", code, e.refused3(0x03))
	}
	if _, err := e.api.RevokeToken(context.Background(), "mqtt-local", revokedLater); err != nil {
		t.Fatal(err)
	}
	select {
	case <-victim.closed:
		t.Fatal("the plugin heard a revocation through a cut link")
	case <-time.After(300 * time.Millisecond):
	}

	e.restartTokenService()
	restored := time.Now()
	e.px.setCut(false)
	if r := victim.waitClosed(3 * time.Second); r != 0x98 {
		t.Fatalf("victim DISCONNECT 0x%02x, want 0x98", r)
	}
	if d := time.Since(restored); d > time.Second {
		t.Fatalf("caught up %v after the link came back", d)
	}
	mustConnect5(t, e.mqtt, "unseen-after", "d", unseen)
	if _, code := connect5(t, e.mqtt, "victim-again", "d", revokedLater); code != e.refused5(0x86) {
		t.Fatalf("revoked token after catch-up: 0x%02x, want 0x%02x", code, e.refused5(0x86))
	}
	select {
	case <-dev.closed:
		t.Fatal("a client with a valid token was disconnected by the outage")
	default:
	}
}

// A token service that accepts and never answers holds Mosquitto's loop
// (single-threaded: the CONNECT is decided in its thread) for at most the
// query timeout: the CONNECT is then refused, and a connected client's
// traffic goes on.
func TestMosquittoPluginStuckTokenService(t *testing.T) {
	e := startMosquittoEnv(t, map[string]string{"query_timeout": "500ms"})
	dev := mustConnect5(t, e.mqtt, "dev", "d", e.apply("dev/#", "R,W", time.Hour))
	dev.subscribe("dev/#", 1)
	unseen := e.apply("dev/#", "R,W", time.Hour)
	e.px.setHang(true)
	start := time.Now()
	if _, code := connect5(t, e.mqtt, "stuck", "d", unseen); code != noConnack {
		t.Fatalf("CONNECT while the token service hangs: 0x%02x, want the socket closed", code)
	}
	waited := time.Since(start)
	t.Logf("refused after %v", waited.Round(time.Millisecond))
	if waited > 5*time.Second {
		t.Fatalf("the CONNECT waited %v for a stuck token service", waited)
	}
	if c := dev.publish("dev/x", 1, false, "still working"); c != 0 {
		t.Fatalf("connected client's publish after the stuck CONNECT: 0x%02x", c)
	}
	dev.waitMessage("dev/x", 5*time.Second)
	// For a while after, CONNECTs that need the token service are refused
	// at once instead of holding the loop again.
	other := e.apply("dev/#", "R,W", time.Hour)
	start = time.Now()
	if _, code := connect5(t, e.mqtt, "stuck-again", "d", other); code != noConnack {
		t.Fatalf("second uncached CONNECT while the token service hangs: 0x%02x, want the socket closed", code)
	}
	if again := time.Since(start); again >= waited {
		t.Fatalf("the second uncached CONNECT waited %v, as long as the first (%v)", again, waited)
	}
	e.px.setHang(false)
	e.px.setCut(true) // drop the hung connections
	e.px.setCut(false)
	testkit.WaitFor(t, 10*time.Second, "the token service to admit again", func() bool {
		c, _ := connect5(t, e.mqtt, "unstuck", "d", unseen)
		return c != nil
	})
}

// A plugin configuration that cannot work stops Mosquitto at start with a
// line saying why, never a broker that admits nobody or everybody.
func TestMosquittoPluginRefusesBadConfig(t *testing.T) {
	needMosquittoPlugin(t)
	so, _ := mosqtest.Plugin()
	for name, tc := range map[string]struct {
		opts           map[string]string
		prelude, extra string
		want           string
	}{
		"no token service": {map[string]string{"instance_id": "x"}, "", "", "plugin_opt_token_service (or TOKENMQ_TOKEN_SERVICE) is required"},
		"no key":           {map[string]string{"token_service": "http://127.0.0.1:9"}, "", "", "plugin_opt_access_key_id and plugin_opt_access_key_secret"},
		"unknown option":   {map[string]string{"token_service": "http://127.0.0.1:9", "access_key_id": "A", "access_key_secret": "B", "tokn_service": "x"}, "", "", "unknown option plugin_opt_tokn_service"},
		"loaded per listener": {map[string]string{"token_service": "http://127.0.0.1:9", "access_key_id": "A", "access_key_secret": "B"},
			"per_listener_settings true\n", "listener 0 " + t.TempDir() + "/second.sock\nplugin " + so + "\nplugin_opt_token_service http://127.0.0.1:9\nplugin_opt_access_key_id A\nplugin_opt_access_key_secret B\n",
			"the plugin is loaded twice"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := mosqtest.Start(mosqtest.Options{PluginOptions: tc.opts, Prelude: tc.prelude, Extra: tc.extra, Dir: t.TempDir()})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("mosquitto started, or failed otherwise: %v\nwant a line with %q", err, tc.want)
			}
		})
	}
}
