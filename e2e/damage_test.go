package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/api"
	"github.com/tokenmq/tokenmq/internal/testkit"
)

// runTokenmq runs `tokenmq args...` to its end (or kills it after timeout)
// and returns its output and whether it failed.
func runTokenmq(t *testing.T, timeout time.Duration, args ...string) (string, bool) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "TOKENMQ_ACCESS_KEY_ID="+adminID, "TOKENMQ_ACCESS_KEY_SECRET="+adminSecret)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-done
		t.Fatalf("tokenmq %v did not exit within %v:\n%s", args, timeout, out)
	}
	return string(out), err != nil
}

// SPEC §4: with tokens in the store but the server keys gone, serve
// refuses to start (new keys would silently invalidate every token), until
// the operator accepts the loss.
func TestMissingKeysRefused(t *testing.T) {
	dir := t.TempDir()
	args := []string{"--api-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--ws-addr", "", "--data-dir", dir}
	p := startTokenmq(t, args...)
	admin := &api.Client{Endpoint: p.apiURL, AccessKeyID: adminID, AccessKeySecret: adminSecret}
	applyWith(t, admin, "a/#", "R", time.Hour)
	if err := p.stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "keys.json")); err != nil {
		t.Fatal(err)
	}
	out, failed := runTokenmq(t, 20*time.Second, append([]string{"serve"}, args...)...)
	if !failed || !strings.Contains(out, "server keys that made them") || !strings.Contains(out, "--accept-key-loss") || strings.Contains(out, "panic") {
		t.Fatalf("start without keys over a store with tokens: failed=%v\n%s", failed, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "keys.json")); err == nil {
		t.Fatal("the refused start made new keys anyway")
	}
	p2 := startTokenmq(t, append(args, "--accept-key-loss")...)
	if !strings.Contains(p2.logs(), "every existing token stops working") {
		t.Fatalf("accepted key loss not logged:\n%s", p2.logs())
	}
}

// SPEC §4: garbage written into the token store's data pages fails the
// requests that read it (500 InternalError, CONNACK 0x88), logged at
// error, and the process serves hundreds of CONNECTs and QueryTokens on.
func TestDamagedTokenStoreServesOn(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, "api:\n  rate_limits: {apply_token: 0, query_token: 0}\n")
	args := []string{"--config", cfg, "--api-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--ws-addr", "", "--data-dir", dir}
	p := startTokenmq(t, args...)
	admin := &api.Client{Endpoint: p.apiURL, AccessKeyID: adminID, AccessKeySecret: adminSecret}
	var toks []string
	for range 300 {
		toks = append(toks, applyWith(t, admin, "dev/#", "R,W", time.Hour))
	}
	if err := p.stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "tokens.db")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	damageLeafPages(b)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	p2 := startTokenmq(t, args...)
	testkit.WaitFor(t, 5*time.Second, "the MQTT address", func() bool { return p2.mqttAddr() != "" })
	admin2 := &api.Client{Endpoint: p2.apiURL, AccessKeyID: adminID, AccessKeySecret: adminSecret}
	ok, unavailable, internal := 0, 0, 0
	for i, tok := range toks {
		if i%2 == 0 {
			switch c, code := connect5(t, p2.mqttAddr(), "dev", "d", tok); {
			case c != nil:
				ok++
				c.close()
			case code == 0x88:
				unavailable++
			default:
				t.Fatalf("CONNECT over a damaged store: 0x%02x, want accepted or 0x88", code)
			}
			continue
		}
		q, err := admin2.QueryToken(context.Background(), "mqtt-local", tok)
		var apiErr *api.Error
		switch {
		case err == nil && q.TokenStatus:
			ok++
		case err != nil && errors.As(err, &apiErr) && apiErr.Status == 500 && apiErr.Code == "InternalError":
			internal++
		default:
			t.Fatalf("QueryToken over a damaged store: %+v, %v", q, err)
		}
	}
	if unavailable+internal == 0 {
		t.Fatal("the damage went unnoticed: the test damaged nothing")
	}
	if !strings.Contains(p2.logs(), "level=ERROR") || !strings.Contains(p2.logs(), "token store is damaged") {
		t.Fatal("the damaged reads were not logged at error")
	}
	if resp := httpGet(t, p2.apiURL+"/healthz"); resp != 200 {
		t.Fatalf("healthz %d after the damaged reads", resp)
	}
	t.Logf("300 requests over a damaged store: %d answered, %d CONNACK 0x88, %d 500 InternalError", ok, unavailable, internal)
}

// damageLeafPages writes garbage over every third bbolt leaf page (where
// the records are; page header flags 0x02), sparing the meta, freelist and
// branch pages so that the file still opens.
func damageLeafPages(b []byte) int {
	page, n := os.Getpagesize(), 0
	for pg, leaf := 2, 0; (pg+1)*page <= len(b); pg++ {
		if b[pg*page+8] != 0x02 || b[pg*page+9] != 0 {
			continue
		}
		if p := b[pg*page : (pg+1)*page]; bytes.Contains(p, []byte("by_instance")) || bytes.Contains(p, []byte("schema")) {
			continue // the leaf that lists the buckets: damaged, the file would not open
		}
		if leaf++; leaf%3 != 0 {
			continue
		}
		for i := pg * page; i < (pg+1)*page; i++ {
			b[i] = byte(i*131 + 7)
		}
		n++
	}
	return n
}

// SPEC §2.1 with the real binary: a broker key flooding signed QueryTokens
// fills only its own share of the replay cache; an admin's RevokeToken
// still works.
func TestNonceFloodLeavesAdminWorking(t *testing.T) {
	cfg := writeConfig(t, `access_keys:
  - {id: AKE2EBROKER001, secret: e2e-broker-secret-0123456789, role: broker}
api:
  nonce_capacity: 300
`)
	p := startTokenmq(t, "--config", cfg, "--api-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--ws-addr", "", "--data-dir", t.TempDir())
	admin := &api.Client{Endpoint: p.apiURL, AccessKeyID: adminID, AccessKeySecret: adminSecret}
	brk := &api.Client{Endpoint: p.apiURL, AccessKeyID: "AKE2EBROKER001", AccessKeySecret: "e2e-broker-secret-0123456789"}
	tok := applyWith(t, admin, "a/#", "R", time.Hour)
	overflowed := false
	for i := 0; i < 400 && !overflowed; i++ {
		_, err := brk.QueryToken(context.Background(), "mqtt-local", tok)
		var apiErr *api.Error
		switch {
		case err == nil:
		case errors.As(err, &apiErr) && apiErr.Status == 400 && apiErr.Code == "SystemOverFlow":
			overflowed = true
		default:
			t.Fatalf("QueryToken %d: %v", i, err)
		}
	}
	if !overflowed {
		t.Fatal("the broker key never filled its share of the replay cache")
	}
	if _, err := admin.RevokeToken(context.Background(), "mqtt-local", tok); err != nil {
		t.Fatalf("admin RevokeToken during a broker key's nonce flood: %v", err)
	}
}
