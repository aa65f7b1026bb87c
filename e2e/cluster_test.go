package e2e

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/api"
	"github.com/tokenmq/tokenmq/internal/testkit"
	"github.com/tokenmq/tokenmq/token/pgstore/pgtest"
)

// postgresURL returns a URL of a fresh schema on the test PostgreSQL.
func postgresURL(t *testing.T) string { return pgtest.FreshSchema(t) }

// cluster is SPEC §4's bigger deployment as real processes: two
// token-service replicas on one PostgreSQL and one keyring, and two brokers,
// one on each replica.
type cluster struct {
	tokensA, tokensB, brokerX, brokerY *proc
	adminA, adminB                     *api.Client
}

func startCluster(t *testing.T, extraConfig string) *cluster {
	t.Helper()
	store := postgresURL(t)
	shared := t.TempDir()
	cfg := writeConfig(t, "store: "+store+"\ntokens:\n  keyring_file: "+filepath.Join(shared, "keys.json")+"\n"+
		"access_keys:\n  - {id: "+brokerKeyID+", secret: "+brokerKeySecret+", role: broker}\n"+extraConfig)
	c := &cluster{}
	c.tokensA = startTokenmq(t, "--config", cfg, "--role", "tokens", "--api-addr", "127.0.0.1:0", "--data-dir", t.TempDir())
	c.tokensB = startTokenmq(t, "--config", cfg, "--role", "tokens", "--api-addr", "127.0.0.1:0", "--data-dir", t.TempDir())
	broker := func(tokens *proc) *proc {
		p := startTokenmqAs(t, brokerKeyID, brokerKeySecret, "--role", "broker", "--token-service", tokens.apiURL,
			"--api-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--ws-addr", "", "--data-dir", t.TempDir())
		testkit.WaitFor(t, 5*time.Second, "a broker's MQTT address", func() bool { return p.mqttAddr() != "" })
		return p
	}
	c.brokerX, c.brokerY = broker(c.tokensA), broker(c.tokensB)
	c.adminA = &api.Client{Endpoint: c.tokensA.apiURL, AccessKeyID: adminID, AccessKeySecret: adminSecret}
	c.adminB = &api.Client{Endpoint: c.tokensB.apiURL, AccessKeyID: adminID, AccessKeySecret: adminSecret}
	return c
}

// ISSUE 6: a token issued by one replica is valid on the other; a
// revocation through either replica disconnects the token's clients on both
// brokers within a second.
func TestClusterRevocationReachesEveryBroker(t *testing.T) {
	c := startCluster(t, "api:\n  rate_limits: {apply_token: 0, query_token: 0, other: 0}\n")
	for i, revoker := range []*api.Client{c.adminB, c.adminA} {
		tok := applyWith(t, c.adminA, "dev/#", "R,W", time.Hour)
		onX := mustConnect5(t, c.brokerX.mqttAddr(), "x", "d", tok)
		onY := mustConnect5(t, c.brokerY.mqttAddr(), "y", "d", tok)
		start := time.Now()
		if _, err := revoker.RevokeToken(context.Background(), "mqtt-local", tok); err != nil {
			t.Fatal(err)
		}
		for _, cl := range []*client5{onX, onY} {
			if r := cl.waitClosed(2 * time.Second); r != 0x98 {
				t.Fatalf("round %d: DISCONNECT 0x%02x, want 0x98", i, r)
			}
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("round %d: both brokers disconnected after %v", i, d)
		}
	}
}

// ISSUE 6: a nonce used on replica A is refused on replica B, and a rate
// limit counts calls on both replicas.
func TestClusterSharesNoncesAndRateLimits(t *testing.T) {
	c := startCluster(t, "api:\n  rate_limits: {apply_token: 2, query_token: 0, other: 0}\n")
	ps := map[string]string{
		"Action": "QueryToken", "Format": "JSON", "Version": api.APIVersion, "AccessKeyId": adminID,
		"SignatureMethod": api.SignatureHMACSHA1, "SignatureVersion": "1.0", "SignatureNonce": "e2e-nonce-1",
		"Timestamp": time.Now().UTC().Format("2006-01-02T15:04:05Z"), "InstanceId": "mqtt-local", "Token": "x",
	}
	ps["Signature"] = api.Sign(http.MethodPost, api.SignatureHMACSHA1, adminSecret, ps)
	post := func(endpoint string) string {
		form := url.Values{}
		for k, v := range ps {
			form.Set(k, v)
		}
		resp, err := http.PostForm(endpoint+"/", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ Code string }
		jsonDecode(t, resp, &body)
		return body.Code
	}
	if code := post(c.tokensA.apiURL); code != "" {
		t.Fatalf("first use on replica A: %s", code)
	}
	if code := post(c.tokensB.apiURL); code != api.CodeNonceUsed {
		t.Fatalf("replay on replica B: %q, want %s", code, api.CodeNonceUsed)
	}
	// Five ApplyTokens alternating between replicas within about a second
	// span at most two one-second windows: at most four pass.
	overflow := 0
	for i := range 5 {
		admin := []*api.Client{c.adminA, c.adminB}[i%2]
		_, err := admin.ApplyToken(context.Background(), api.ApplyTokenRequest{InstanceID: "mqtt-local",
			Resources: []string{"a"}, Actions: "R", ExpireTime: time.Now().Add(time.Hour)})
		var apiErr *api.Error
		if errors.As(err, &apiErr) && apiErr.Code == api.CodeApplyTokenOverFlow {
			overflow++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if overflow == 0 {
		t.Fatal("five ApplyTokens across two replicas with a limit of 2/s: none refused")
	}
}

// ISSUE 6: one replica killed mid-load; the other keeps serving.
func TestClusterSurvivesAReplicaKill(t *testing.T) {
	c := startCluster(t, "api:\n  rate_limits: {apply_token: 0, query_token: 0, other: 0}\n")
	tok := applyWith(t, c.adminA, "dev/#", "R,W", time.Hour)
	var okB, failB atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				q, err := c.adminB.QueryToken(context.Background(), "mqtt-local", tok)
				if err != nil || !q.TokenStatus {
					failB.Add(1)
				} else {
					okB.Add(1)
				}
			}
		}()
	}
	testkit.WaitFor(t, 10*time.Second, "load on replica B", func() bool { return okB.Load() > 100 })
	c.tokensA.kill()
	before := okB.Load()
	testkit.WaitFor(t, 10*time.Second, "replica B to keep answering", func() bool { return okB.Load() > before+500 })
	close(stop)
	wg.Wait()
	if failB.Load() > 0 {
		t.Fatalf("replica B failed %d of %d QueryTokens while A was killed", failB.Load(), okB.Load()+failB.Load())
	}
	// Through B's broker, a token issued after the kill gets in.
	fresh := applyWith(t, c.adminB, "dev/#", "R,W", time.Hour)
	mustConnect5(t, c.brokerY.mqttAddr(), "after-kill", "d", fresh)
}
