package e2e

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/api"
	"github.com/tokenmq/tokenmq/broker"
	"github.com/tokenmq/tokenmq/config"
	"github.com/tokenmq/tokenmq/internal/mosqtest"
	"github.com/tokenmq/tokenmq/mosqauth"
	"github.com/tokenmq/tokenmq/tokenauth"
)

// Mosquitto with tokenmq's plugin (SPEC §6.3) as the broker under test:
// the token service runs in-process (role tokens), Mosquitto is a real
// process loading cmd/tokenmq-mosquitto, built for the test.

const (
	pluginKeyID     = "AKE2EMOSQUITTO01"
	pluginKeySecret = "e2e-mosquitto-broker-secret-0123"
)

// needMosquittoPlugin skips unless Mosquitto and a C compiler are here;
// TOKENMQ_REQUIRE_MOSQUITTO (set by .ci/run) turns the skip into a failure.
func needMosquittoPlugin(t *testing.T) {
	t.Helper()
	if _, err := mosqtest.Plugin(); err != nil {
		msg := "SKIP-NEEDS-MOSQUITTO: " + err.Error() + " (apt-get install mosquitto gcc; .ci/run does)"
		if errors.Is(err, mosqtest.ErrUnavailable) && os.Getenv("TOKENMQ_REQUIRE_MOSQUITTO") == "" {
			t.Skip(msg)
		}
		t.Fatal(msg)
	}
}

// startMosquittoEnv starts the token service and a Mosquitto with the
// plugin in front of it. opts adjust the token service's configuration;
// pluginOpts are plugin_opt_ lines.
func startMosquittoEnv(t *testing.T, pluginOpts map[string]string, opts ...envOption) *env {
	t.Helper()
	needMosquittoPlugin(t)
	cfg := config.Default()
	cfg.Role = config.RoleTokens
	cfg.DataDir = t.TempDir()
	cfg.APIAddr = "127.0.0.1:0"
	cfg.API.RateLimits = config.RateLimits{}
	for _, o := range opts {
		o(&cfg)
	}
	cfg.SetDefaults()
	logs := &syncLog{}
	srv, err := broker.New(broker.Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		AccessKeys: []api.AccessKey{{ID: adminID, Secret: adminSecret, Role: api.RoleAdmin}, {ID: pluginKeyID, Secret: pluginKeySecret, Role: api.RoleBroker}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, srv: srv, logs: logs, config: cfg}
	t.Cleanup(func() { // the token service of the moment (restartTokenService replaces it)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.srv.Shutdown(ctx)
	})
	// The broker settings of the options (the expiry notice, the plain
	// form, the cache) become the plugin's.
	b := cfg.Broker
	// The plugin reaches the token service through a proxy the tests can cut.
	px := newProxy(t, srv.APIAddr().String())
	po := map[string]string{"token_service": px.url(), "instance_id": "mqtt-local",
		"expire_notice": b.ExpireNotice.String(), "allow_plain_token": strconv.FormatBool(b.AllowPlainToken),
		"cache_negative_ttl": b.Cache.NegativeTTL.String(), "cache_positive_ttl": b.Cache.PositiveTTL.String()}
	for k, v := range pluginOpts {
		po[k] = v
	}
	m, err := mosqtest.Start(mosqtest.Options{PluginOptions: po, Dir: t.TempDir(),
		Env: []string{"TOKENMQ_ACCESS_KEY_ID=" + pluginKeyID, "TOKENMQ_ACCESS_KEY_SECRET=" + pluginKeySecret}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.Stop()
		if t.Failed() {
			t.Logf("mosquitto's log:\n%s", m.Logs())
		}
	})
	e.mosq, e.px, e.mqtt = m, px, m.Addr
	e.api = &api.Client{Endpoint: "http://" + srv.APIAddr().String(), AccessKeyID: adminID, AccessKeySecret: adminSecret}
	return e
}

// droppedOnResume is tokenmq's count of queued or in-flight messages
// discarded at resume because the resuming token does not cover them.
// Mosquitto discards them too (it checks each against the plugin), but
// counts nothing: 0.
func (e *env) droppedOnResume() int64 {
	if e.mosq != nil {
		return 0
	}
	return e.srv.Hook().QueueStats().DroppedOnResume
}

// pluginLogs is what the plugin wrote to Mosquitto's log.
func (e *env) pluginLogs() string {
	var out []string
	for _, l := range strings.Split(e.mosq.Logs(), "\n") {
		if strings.Contains(l, "tokenmq:") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// What the broker under test answers where Mosquitto's plugin interface
// cannot give tokenmq's own answer (README, "Mosquitto plugin"). The
// shared tests (brokerTests) say what they expect of tokenmq and ask these.

// refused5 is the CONNACK reason an MQTT 5 client gets where tokenmq
// answers code: a Mosquitto plugin can only refuse with 0x87, or close
// the socket (a token service that cannot be reached).
func (e *env) refused5(code byte) byte {
	switch {
	case e.mosq == nil || code == 0:
		return code
	case code == 0x88:
		return noConnack
	}
	return 0x87
}

// refused3 is refused5 for MQTT 3.1.1 (return code 5).
func (e *env) refused3(code byte) byte {
	switch {
	case e.mosq == nil || code == 0:
		return code
	case code == 0x03:
		return noConnack
	}
	return 0x05
}

// kicked5 is the DISCONNECT reason of a connection the broker ends for a
// token's expiry, revocation or invalid renewal: Mosquitto's kick always
// says 0x98.
func (e *env) kicked5(reason int) int {
	if e.mosq != nil {
		return 0x98
	}
	return reason
}

// uploadTopic is where a client renews in session: Mosquitto refuses
// client publishes to $SYS before a plugin sees them.
func (e *env) uploadTopic() string {
	if e.mosq != nil {
		return mosqauth.ControlTopic
	}
	return tokenauth.TopicUploadToken
}

// restartTokenService stops the in-process token service and starts it
// again on the same data dir, behind the same proxy.
func (e *env) restartTokenService() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.srv.Shutdown(ctx)
	srv, err := broker.New(broker.Options{Config: e.config, Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		AccessKeys: []api.AccessKey{{ID: adminID, Secret: adminSecret, Role: api.RoleAdmin}, {ID: pluginKeyID, Secret: pluginKeySecret, Role: api.RoleBroker}}})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.srv = srv
	e.api = &api.Client{Endpoint: "http://" + srv.APIAddr().String(), AccessKeyID: adminID, AccessKeySecret: adminSecret}
	e.px.retarget(srv.APIAddr().String())
}
