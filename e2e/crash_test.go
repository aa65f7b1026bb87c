package e2e

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/api"
	"github.com/tokenmq/tokenmq/internal/testkit"
	"github.com/tokenmq/tokenmq/token/boltstore"
)

// TestCrashKeepsAcknowledgedWrites kills `tokenmq serve --role tokens` with
// SIGKILL in the middle of 200 concurrent ApplyToken and RevokeToken
// callers, restarts it on the same data dir, and checks that every token that
// got a 200 is still valid unless its revocation got a 200, and that no
// token revoked with a 200 is valid again. It does this over several kills,
// with a full store scan after each.
func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts the real binary")
	}
	dataDir := t.TempDir()
	// Durability, not rate limiting, is under test: lift the per-key limits.
	cfg := writeConfig(t, "api:\n  rate_limits: {apply_token: 0, query_token: 0, other: 0}\n")
	args := []string{"--config", cfg, "--role", "tokens", "--api-addr", "127.0.0.1:0", "--data-dir", dataDir}

	var (
		mu      sync.Mutex
		applied = map[string]bool{} // token -> got a 200 ApplyToken
		revoked = map[string]bool{} // token -> got a 200 RevokeToken
		pending = map[string]bool{} // token -> a RevokeToken without an answer (either state is right)
	)
	const rounds = 3
	const writers = 200 // concurrent ApplyToken/RevokeToken callers
	for round := 1; round <= rounds; round++ {
		p := startTokenmq(t, args...)
		c := &api.Client{Endpoint: p.apiURL, AccessKeyID: adminID, AccessKeySecret: adminSecret,
			HTTPClient: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: writers}}}
		verify(t, c, round, &mu, applied, revoked, pending)

		var acked atomic.Int64
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ctx.Err() == nil; i++ {
					resp, err := c.ApplyToken(ctx, api.ApplyTokenRequest{
						InstanceID: "mqtt-local", Resources: []string{fmt.Sprintf("w%d/%d/#", w, i)}, Actions: "R,W",
						ExpireTime: time.Now().Add(time.Hour),
					})
					if err != nil {
						continue // killed mid-call: no acknowledgement, no claim
					}
					mu.Lock()
					applied[resp.Token] = true
					mu.Unlock()
					acked.Add(1)
					if i%2 == 0 {
						mu.Lock()
						pending[resp.Token] = true
						mu.Unlock()
						if _, err := c.RevokeToken(ctx, "mqtt-local", resp.Token); err == nil {
							mu.Lock()
							revoked[resp.Token] = true
							delete(pending, resp.Token)
							mu.Unlock()
						}
					}
				}
			}()
		}
		// Kill once hundreds of writes are acknowledged in this round, with
		// every writer mid-call.
		testkit.WaitFor(t, 60*time.Second, "600 acknowledged ApplyTokens", func() bool { return acked.Load() >= 600 })
		p.kill()
		cancel()
		wg.Wait()
		t.Logf("round %d: killed after %d acknowledged ApplyTokens this round", round, acked.Load())

		// The file is whole: bbolt's own check plus a scan of every record and index.
		st, err := boltstore.Open(filepath.Join(dataDir, boltstore.FileName), 5*time.Second)
		if err != nil {
			t.Fatalf("round %d: reopening the store after SIGKILL: %v", round, err)
		}
		if err := st.Check(); err != nil {
			t.Fatalf("round %d: store check after SIGKILL: %v", round, err)
		}
		st.Close()
	}
	p := startTokenmq(t, args...)
	c := &api.Client{Endpoint: p.apiURL, AccessKeyID: adminID, AccessKeySecret: adminSecret}
	verify(t, c, rounds+1, &mu, applied, revoked, pending)
	if err := p.stop(10 * time.Second); err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, p.logs())
	}
}

// verify queries every acknowledged token against the restarted service.
func verify(t *testing.T, c *api.Client, round int, mu *sync.Mutex, applied, revoked, pending map[string]bool) {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	type check struct {
		tok  string
		want bool
	}
	var checks []check
	for tok := range applied {
		if pending[tok] {
			continue
		}
		checks = append(checks, check{tok, !revoked[tok]})
	}
	jobs := make(chan check)
	errs := make(chan error, len(checks))
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ck := range jobs {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				q, err := c.QueryToken(ctx, "mqtt-local", ck.tok)
				cancel()
				switch {
				case err != nil:
					errs <- err
				case q.TokenStatus != ck.want:
					errs <- fmt.Errorf("token acknowledged (revoked=%v) has TokenStatus %v after restart", !ck.want, q.TokenStatus)
				}
			}
		}()
	}
	for _, ck := range checks {
		jobs <- ck
	}
	close(jobs)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("round %d: %v", round, err)
	}
	t.Logf("round %d: %d acknowledged tokens checked (%d revoked, %d with an unanswered revoke)", round, len(checks), len(revoked), len(pending))
}
