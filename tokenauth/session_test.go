package tokenauth

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/internal/testkit"
	"github.com/tokenmq/tokenmq/token"
)

func noticeBody(t *testing.T, n Notice) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(n.Payload, &m); err != nil {
		t.Fatalf("notice %s: %q is not JSON: %v", n.Topic, n.Payload, err)
	}
	return m
}

// A revocation heard from the feed kicks every connection relying on the
// token: rights go at once, then $SYS/tokenInvalidNotice code 3 and the
// disconnect; other connections are untouched.
func TestRevocationKicksItsConnections(t *testing.T) {
	f := newFixture(t, nil)
	doomed, _ := f.apply(token.ActionReadWrite, time.Hour, "a/#")
	kept, _ := f.apply(token.ActionReadWrite, time.Hour, "a/#")
	s1, c1 := f.mustConnect("one", "d", doomed)
	s2, c2 := f.mustConnect("two", "Token|AK1|"+testInstance, "RW|"+doomed)
	s3, c3 := f.mustConnect("three", "d", kept)
	f.revoke(doomed)
	for _, c := range []*recClient{c1, c2} {
		n := c.waitKicked(t, CauseRevoked)
		if len(n) != 1 || n[0].Topic != TopicInvalidNotice || noticeBody(t, n[0])["code"] != float64(3) || noticeBody(t, n[0])["type"] != "RW" {
			t.Fatalf("notices %+v, want one tokenInvalidNotice code 3 type RW", n)
		}
	}
	for _, s := range []*Session{s1, s2} {
		if s.Rights().Readable("a/b") || !s.Closing() {
			t.Fatal("a kicked session keeps its rights")
		}
	}
	if !s3.Rights().Readable("a/b") || s3.Closing() {
		t.Fatal("a connection with another token lost its rights")
	}
	if _, d, _, _ := c3.snapshot(); len(d) != 0 {
		t.Fatal("a connection with another token was kicked")
	}
	if !f.obs.has("disconnected:revoked") || !f.obs.has("revocation") {
		t.Fatalf("observer saw %v", f.obs.events)
	}
	if _, _, ref := f.connect("four", "d", doomed); ref == nil || ref.Reason != "revoked_token" {
		t.Fatalf("revoked token admitted: %v", ref)
	}
	if CauseRevoked.Reason() != ReasonAdministrativeAction {
		t.Fatal("revocation is not DISCONNECT 0x98")
	}
}

// A kick that arrives between the CONNECT's validation and the CONNACK
// waits for Establish; a revocation heard in that window is caught there.
func TestKickBeforeEstablishWaits(t *testing.T) {
	f := newFixture(t, nil)
	tok, rec := f.apply(token.ActionReadWrite, time.Hour, "a/#")
	s, c, ref := f.connect("early", "d", tok)
	if ref != nil {
		t.Fatal(ref)
	}
	f.a.Revoke(token.Revocation{ID: rec.ID, InstanceID: testInstance, RevokeTime: time.Now(), ExpireTime: rec.ExpireTime})
	if _, d, _, _ := c.snapshot(); len(d) != 0 || s.Rights().Readable("a/b") {
		t.Fatal("kicked before the CONNACK, or rights kept")
	}
	s.Establish()
	c.waitKicked(t, CauseRevoked)

	// Revoked between validation and indexing: the index missed it, Establish does not.
	tok2, rec2 := f.apply(token.ActionReadWrite, time.Hour, "a/#")
	s2, c2, ref := f.connect("late", "d", tok2)
	if ref != nil {
		t.Fatal(ref)
	}
	f.a.unindex(s2, s2.TokenIDs()) // as if the revocation came before the index
	f.a.Revoke(token.Revocation{ID: rec2.ID, InstanceID: testInstance, RevokeTime: time.Now(), ExpireTime: rec2.ExpireTime})
	if s2.Closing() {
		t.Fatal("unindexed session kicked")
	}
	s2.Establish()
	c2.waitKicked(t, CauseRevoked)
}

// Expiry: the notice comes ExpireNotice ahead (with user properties for
// AuthMethod clients), the kick at expiry with code 2 and 0xA0.
func TestExpiryNoticeAndKick(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.ExpireNotice = 900 * time.Millisecond })
	tok, rec := f.apply(token.ActionRead, 1200*time.Millisecond, "a/#")
	s, c := f.mustConnect("exp", "d", tok)
	s.UseAuthMethod()
	testkit.WaitFor(t, 2*time.Second, "the expiry notice", func() bool { n, _, _, _ := c.snapshot(); return len(n) > 0 })
	n, d, _, _ := c.snapshot()
	if len(d) != 0 {
		t.Fatal("disconnected before expiry")
	}
	body := noticeBody(t, n[0])
	if n[0].Topic != TopicExpireNotice || body["expireTime"] != float64(rec.ExpireTime.UnixMilli()) || body["type"] != "R" {
		t.Fatalf("expiry notice %s %s", n[0].Topic, n[0].Payload)
	}
	if len(n[0].Properties) != 2 || n[0].Properties[1] != (Property{"type", "R"}) {
		t.Fatalf("user properties %+v", n[0].Properties)
	}
	n = c.waitKicked(t, CauseExpired)
	if len(n) != 2 || n[1].Topic != TopicInvalidNotice || noticeBody(t, n[1])["code"] != float64(2) {
		t.Fatalf("notices %+v", n)
	}
	if !time.Now().After(rec.ExpireTime) {
		t.Fatal("kicked before the token expired")
	}
	if !f.obs.has("disconnected:expired") || CauseExpired.Reason() != ReasonMaxConnectTime {
		t.Fatal("expiry not observed as 0xA0")
	}
}

// A stuck socket: when Disconnect does not return within a second, Close.
func TestKickClosesAStuckConnection(t *testing.T) {
	f := newFixture(t, nil)
	tok, _ := f.apply(token.ActionReadWrite, time.Hour, "a/#")
	c := &recClient{block: make(chan struct{})}
	t.Cleanup(func() { close(c.block) })
	s, ref := f.a.Connect(ConnectRequest{ClientID: "stuck", Password: []byte(tok), HasPassword: true}, c)
	if ref != nil {
		t.Fatal(ref)
	}
	s.Establish()
	start := time.Now()
	s.Kick(CauseInvalid, token.ActionReadWrite, "test")
	s.Kick(CauseRevoked, token.ActionReadWrite, "second kick does nothing")
	c.waitKicked(t, CauseInvalid)
	if el := time.Since(start); el < 900*time.Millisecond || el > 2500*time.Millisecond {
		t.Fatalf("closed after %v, want about a second", el)
	}
}

// End forgets the connection: no timers fire, revocations no longer find it.
func TestEndStopsEverything(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.ExpireNotice = 200 * time.Millisecond })
	tok, rec := f.apply(token.ActionReadWrite, 400*time.Millisecond, "a/#") // notice due in 200 ms, expiry in 400 ms
	s, c := f.mustConnect("gone", "d", tok)
	s.End()
	f.a.Revoke(token.Revocation{ID: rec.ID, InstanceID: testInstance, RevokeTime: time.Now(), ExpireTime: rec.ExpireTime})
	time.Sleep(600 * time.Millisecond) // past the expiry; nothing to wait for: nothing may happen
	if n, d, cl, _ := c.snapshot(); len(n)+len(d)+len(cl) != 0 {
		t.Fatalf("an ended session got %d notices, %d disconnects, %d closes", len(n), len(d), len(cl))
	}
	f.a.idxMu.Lock()
	left := len(f.a.byToken)
	f.a.idxMu.Unlock()
	if left != 0 {
		t.Fatalf("%d tokens still indexed", left)
	}
}

// Close stops every session's timers.
func TestCloseStopsTimers(t *testing.T) {
	f := newFixture(t, nil)
	tok, _ := f.apply(token.ActionReadWrite, 300*time.Millisecond, "a/#")
	_, c := f.mustConnect("closing", "d", tok)
	f.a.Close()
	f.a.Close()                        // idempotent
	time.Sleep(500 * time.Millisecond) // past the expiry; nothing to wait for: nothing may happen
	if _, d, _, _ := c.snapshot(); len(d) != 0 {
		t.Fatal("an expiry timer fired after Close")
	}
}

// Establish hands the adapter the rights, to prune inherited subscriptions.
func TestEstablishRestricts(t *testing.T) {
	f := newFixture(t, nil)
	tok, _ := f.apply(token.ActionRead, time.Hour, "a/#")
	s, c := f.mustConnect("resumed", "d", tok)
	if _, _, _, r := c.snapshot(); len(r) != 1 || r[0] != s.Rights() {
		t.Fatalf("Restrict calls %v", r)
	}
}
