package broker

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/tokenmq/tokenmq/api"
	"github.com/tokenmq/tokenmq/config"
)

func testConfig(t *testing.T, role string) config.Config {
	c := config.Default()
	c.Role, c.DataDir = role, t.TempDir()
	c.APIAddr, c.MQTTAddr, c.WSAddr = "127.0.0.1:0", "127.0.0.1:0", ""
	if role == config.RoleBroker {
		c.TokenService = "http://127.0.0.1:1"
	}
	c.SetDefaults()
	return c
}

func TestNewRejects(t *testing.T) {
	key := []api.AccessKey{{ID: "AK", Secret: "0123456789abcdef", Role: api.RoleAdmin}}
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"token API without keys", Options{Config: testConfig(t, config.RoleTokens)}, "no access keys"},
		{"broker without a client key", Options{Config: testConfig(t, config.RoleBroker)}, "TOKENMQ_ACCESS_KEY_ID"},
		{"bad key", Options{Config: testConfig(t, config.RoleAll), AccessKeys: []api.AccessKey{{ID: "AK", Secret: "short", Role: api.RoleAdmin}}}, "secret shorter"},
		{"invalid config", Options{Config: func() config.Config { c := testConfig(t, config.RoleAll); c.Role = "x"; return c }(), AccessKeys: key}, `role "x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// Role broker starts without reaching its token service (it fails closed
// until it can), and serves only /healthz and /readyz on its API port.
func TestBrokerRoleStartsAndServesProbesOnly(t *testing.T) {
	s, err := New(Options{Config: testConfig(t, config.RoleBroker), Logger: slog.New(slog.DiscardHandler),
		ClientKey: api.AccessKey{ID: "AKB", Secret: "0123456789abcdef"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	base := "http://" + s.APIAddr().String()
	for path, want := range map[string]int{"/readyz": 200, "/healthz": 200, "/": 404} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	if s.Service() != nil || s.Hook() == nil || s.MQTTAddr("tcp") == "" || s.MQTTAddr("ws") != "" {
		t.Fatal("role broker must run the hook and MQTT, no token service, and no disabled listener")
	}
}

func TestStartFailsCleanlyOnBusyPort(t *testing.T) {
	a, err := New(Options{Config: testConfig(t, config.RoleAll), Logger: slog.New(slog.DiscardHandler),
		AccessKeys: []api.AccessKey{{ID: "AK", Secret: "0123456789abcdef", Role: api.RoleAdmin}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(context.Background())
	cfg := testConfig(t, config.RoleAll)
	cfg.MQTTAddr = a.MQTTAddr("tcp") // taken
	b, _ := New(Options{Config: cfg, Logger: slog.New(slog.DiscardHandler),
		AccessKeys: []api.AccessKey{{ID: "AK", Secret: "0123456789abcdef", Role: api.RoleAdmin}}})
	if err := b.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "mqtt tcp listener") {
		t.Fatalf("Start on a busy port = %v", err)
	}
	// What it opened is released: the data dir's store can be opened again.
	c, _ := New(Options{Config: func() config.Config { c := cfg; c.MQTTAddr = "127.0.0.1:0"; return c }(), Logger: slog.New(slog.DiscardHandler),
		AccessKeys: []api.AccessKey{{ID: "AK", Secret: "0123456789abcdef", Role: api.RoleAdmin}}})
	if err := c.Start(context.Background()); err != nil {
		t.Fatalf("restart on the same data dir after a failed start: %v", err)
	}
	c.Shutdown(context.Background())
}

// SPEC §2.4: the EMQX webhook is mounted on the API port when a secret is set.
func TestEMQXWebhookMounted(t *testing.T) {
	cfg := testConfig(t, config.RoleTokens)
	cfg.API.EMQXSecret = "s3cret-for-emqx"
	s, err := New(Options{Config: cfg, Logger: slog.New(slog.DiscardHandler),
		AccessKeys: []api.AccessKey{{ID: "AK", Secret: "0123456789abcdef", Role: api.RoleAdmin}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	url := "http://" + s.APIAddr().String() + "/mqtt/auth"
	for bearer, want := range map[string]int{"": 401, "s3cret-for-emqx": 200} {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"clientid":"c","username":"u","password":"nope"}`))
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("bearer %q: %d, want %d", bearer, resp.StatusCode, want)
		}
	}
}
