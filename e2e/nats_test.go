package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/api"
	"github.com/tokenmq/tokenmq/internal/natstest"
)

// natsEnv is a 3-node NATS cluster (JetStream, MQTT, auth callout) whose
// MQTT clients a `tokenmq serve --role tokens` process authorizes, as
// configs/nats/ deploys it.
type natsEnv struct {
	cluster *natstest.Cluster
	tokens  *proc
	admin   *api.Client
	config  string
}

func startNATSEnv(t *testing.T) *natsEnv {
	t.Helper()
	c := natstest.Start(t, natstest.Options{Nodes: 3, Callout: true})
	dir := t.TempDir()
	seed, _ := c.Issuer.Seed()
	if err := os.WriteFile(filepath.Join(dir, "issuer.nk"), seed, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "tokenmq.yaml")
	yaml := fmt.Sprintf(`role: tokens
data_dir: %s
api_addr: 127.0.0.1:0
tokens:
  min_ttl: 1s
nats:
  url: %s
  user: %s
  password_env: NATS_AUTH_PASSWORD
  issuer_seed_file: issuer.nk   # relative to this file
  account: %s
  system_user: %s
  system_password_env: NATS_SYS_PASSWORD
`, filepath.Join(dir, "data"), c.URL(), natstest.AuthUser, natstest.MQTTAccount, natstest.SysUser)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NATS_AUTH_PASSWORD", c.AuthPass)
	t.Setenv("NATS_SYS_PASSWORD", c.SysPass)
	p := startTokenmq(t, "--config", cfg)
	return &natsEnv{cluster: c, tokens: p, config: cfg,
		admin: &api.Client{Endpoint: p.apiURL, AccessKeyID: adminID, AccessKeySecret: adminSecret}}
}

func (e *natsEnv) apply(t *testing.T, resources, actions string, ttl time.Duration) string {
	t.Helper()
	return applyWith(t, e.admin, resources, actions, ttl)
}

// SPEC §6.2 with the real binary: clients on different nodes exchange
// messages within their rights, with both credential forms; a revocation
// through the API disconnects the token's clients on other nodes; a
// forged token is refused with return code 5.
func TestNATSCalloutProcess(t *testing.T) {
	e := startNATSEnv(t)
	sub := natstest.MustDial(t, e.cluster.MQTT(0), "sub", e.apply(t, "fleet/+/cmd", "R", time.Hour))
	if got := sub.Subscribe(t, "fleet/+/cmd", 1); got != 1 {
		t.Fatalf("SUBACK 0x%02x", got)
	}
	if got := sub.Subscribe(t, "fleet/#", 1); got != 0x80 {
		t.Fatalf("SUBACK for a filter the token does not contain: 0x%02x, want 0x80", got)
	}
	pubTok := e.apply(t, "fleet/#", "W", time.Hour)
	pub, rc := natstest.Dial(t, e.cluster.MQTT(2), "pub", "Token|"+adminID+"|mqtt-local", "W|"+pubTok, true) // the ApsaraMQ form
	if rc != 0 {
		t.Fatalf("ApsaraMQ-form connect: return code %d", rc)
	}
	pub.Publish(t, "fleet/d1/cmd", 1, false, "across nodes")
	natstest.WaitPayloads(t, sub, "across nodes")

	if _, rc := natstest.Dial(t, e.cluster.MQTT(1), "forger", "device", pubTok[:len(pubTok)-3]+"abc", true); rc != 5 {
		t.Fatalf("forged token: return code %d, want 5", rc)
	}

	start := time.Now()
	if _, err := e.admin.RevokeToken(context.Background(), "mqtt-local", pubTok); err != nil {
		t.Fatal(err)
	}
	select {
	case <-pub.Lost:
		t.Logf("the revoked token's client on another node was disconnected %v after RevokeToken returned", time.Since(start).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("the revoked token's client is still connected after 5s")
	}
	if !strings.Contains(e.tokens.logs(), "broker=nats") {
		t.Errorf("the callout's decisions are not in the log:\n%s", e.tokens.logs())
	}
}

// The token service stopped: new NATS clients are refused, those connected
// stay and keep exchanging messages (NATS holds their permissions).
func TestNATSTokenServiceDown(t *testing.T) {
	e := startNATSEnv(t)
	tok := e.apply(t, "a/#", "R,W", time.Hour)
	spare := e.apply(t, "a/#", "R,W", time.Hour)
	a := natstest.MustDial(t, e.cluster.MQTT(0), "a", tok)
	b := natstest.MustDial(t, e.cluster.MQTT(1), "b", tok)
	b.Subscribe(t, "a/x", 1)
	e.tokens.kill()
	start := time.Now()
	if _, rc := natstest.Dial(t, e.cluster.MQTT(2), "c", "device", spare, true); rc != 5 {
		t.Fatalf("with the token service down, a new client got return code %d, want 5", rc)
	}
	t.Logf("refused after %v (the servers' authorization timeout)", time.Since(start).Round(time.Millisecond))
	a.Publish(t, "a/x", 1, false, "still here")
	natstest.WaitPayloads(t, b, "still here")
}

// --check-config checks the issuer seed and prints the public key the
// servers' auth_callout.issuer must be.
func TestNATSCheckConfig(t *testing.T) {
	e := startNATSEnv(t)
	out, err := exec.Command(binary, "serve", "--config", e.config, "--check-config").CombinedOutput()
	if err != nil {
		t.Fatalf("--check-config: %v\n%s", err, out)
	}
	pub, _ := e.cluster.Issuer.PublicKey()
	if !strings.Contains(string(out), "auth_callout.issuer must be "+pub) || strings.Contains(string(out), e.cluster.AuthPass) {
		t.Fatalf("--check-config output:\n%s", out)
	}
	bad := writeConfig(t, "role: tokens\nnats:\n  url: nats://127.0.0.1:1\n  user: auth\n  system_user: sys\n  issuer_seed_file: /nonexistent.nk\n")
	out, err = exec.Command(binary, "serve", "--config", bad, "--check-config").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "nats.issuer_seed_file") {
		t.Fatalf("a missing seed file passed --check-config:\n%s", out)
	}
}

// ListClients and KickClient reach the NATS cluster's MQTT clients: the
// callout's connections are listed, and a kick disconnects the client on
// whichever node it is (its JetStream session is NATS's to keep).
func TestNATSClientsAdmin(t *testing.T) {
	e := startNATSEnv(t)
	dev := natstest.MustDial(t, e.cluster.MQTT(1), "nats-dev", e.apply(t, "fleet/#", "R,W", time.Hour))
	got := waitListed(t, e.admin, "nats-dev")
	if got[0].ProtocolVersion != 4 || len(got[0].TokenIds) != 1 || got[0].BrokerId == "" {
		t.Fatalf("listed as %+v", got[0])
	}
	start := time.Now()
	if r, err := e.admin.KickClient(context.Background(), "mqtt-local", "nats-dev"); err != nil || r.Connections != 1 {
		t.Fatalf("KickClient: %+v %v", r, err)
	}
	select {
	case <-dev.Lost:
		t.Logf("kicked %v after KickClient returned", time.Since(start).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("the kicked NATS client is still connected after 5s")
	}
	waitListed(t, e.admin)
}
