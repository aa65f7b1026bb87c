package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/internal/testkit"
	"github.com/tokenmq/tokenmq/token"
)

func TestApplyQueryRevokeOverHTTP(t *testing.T) {
	hs := newHarness(t)
	// GET with everything in the query string, as some SDKs send it.
	ps := hs.signed(http.MethodGet, adminID, adminSecret, "ApplyToken", applyParams(hs, map[string]string{
		"Resources": "b/#,a/+,b/#", "Name": "sensor 7",
	}))
	status, body := hs.do(http.MethodGet, ps)
	if status != 200 {
		t.Fatalf("ApplyToken: %d %v", status, body)
	}
	tok := body["Token"].(string)
	if len(tok) > 128 || strings.ContainsAny(tok, "|+/=") {
		t.Fatalf("token %q is not ≤128 base64url characters", tok)
	}

	status, body = hs.call("QueryToken", map[string]string{"InstanceId": "inst-a", "Token": tok})
	want := map[string]any{
		"TokenStatus": true, "Actions": "R,W", "Resources": "a/+,b/#", "AccessKeyId": adminID,
		"ExpireTime": float64(hs.clock.Now().Add(time.Hour).UnixMilli()),
	}
	for k, v := range want {
		if body[k] != v {
			t.Fatalf("QueryToken %s = %v, want %v (%d %v)", k, body[k], v, status, body)
		}
	}
	if id, _ := body["TokenId"].(string); len(id) != 32 {
		t.Fatalf("TokenId %q", body["TokenId"])
	}

	// A broker key may query; the token of inst-a is false on inst-b.
	status, body = hs.do(http.MethodPost, hs.signed(http.MethodPost, brokerID, brokerSecret, "QueryToken", map[string]string{"InstanceId": "inst-b", "Token": tok}))
	if status != 200 || body["TokenStatus"] != false || body["TokenId"] != nil {
		t.Fatalf("QueryToken on another instance: %d %v", status, body)
	}

	for i := range 2 { // idempotent
		if status, body = hs.call("RevokeToken", map[string]string{"InstanceId": "inst-a", "Token": tok}); status != 200 || body["RequestId"] == "" {
			t.Fatalf("RevokeToken #%d: %d %v", i+1, status, body)
		}
	}
	status, body = hs.call("QueryToken", map[string]string{"InstanceId": "inst-a", "Token": tok})
	if status != 200 || body["TokenStatus"] != false {
		t.Fatalf("QueryToken after revoke: %d %v", status, body)
	}
}

func TestQueryTokenFalseCases(t *testing.T) {
	hs := newHarness(t)
	expiring := hs.apply("inst-a", "a", "R", time.Minute)
	hs.clock.Advance(30 * time.Second)
	fresh := hs.apply("inst-a", "a", "R", 10*time.Minute)
	hs.clock.Advance(31 * time.Second) // tok and expiring have expired
	for name, s := range map[string]string{
		"expired":        expiring,
		"forged":         fresh[:20] + "AAAA" + fresh[24:],
		"malformed":      "hello",
		"pipe":           "R|" + fresh,
		"other instance": "", // filled below
	} {
		inst := "inst-a"
		if name == "other instance" {
			s, inst = fresh, "inst-b"
		}
		status, body := hs.call("QueryToken", map[string]string{"InstanceId": inst, "Token": s})
		if status != 200 || body["TokenStatus"] != false {
			t.Errorf("%s: %d %v, want 200 TokenStatus false", name, status, body)
		}
	}
	status, body := hs.call("QueryToken", map[string]string{"InstanceId": "inst-a", "Token": fresh})
	if status != 200 || body["TokenStatus"] != true {
		t.Fatalf("fresh token: %d %v", status, body)
	}
}

func TestSignatureHMACSHA256(t *testing.T) {
	hs := newHarness(t)
	ps := applyParams(hs, nil)
	ps["SignatureMethod"] = SignatureHMACSHA256
	signed := hs.signed(http.MethodPost, adminID, adminSecret, "ApplyToken", ps)
	if status, body := hs.do(http.MethodPost, signed); status != 200 {
		t.Fatalf("HMAC-SHA256: %d %v", status, body)
	}
}

func TestNonceReplayRefused(t *testing.T) {
	hs := newHarness(t)
	ps := hs.signed(http.MethodPost, adminID, adminSecret, "ApplyToken", applyParams(hs, nil))
	if status, body := hs.do(http.MethodPost, ps); status != 200 {
		t.Fatalf("first request: %d %v", status, body)
	}
	before := hs.snapshot()
	for _, d := range []time.Duration{0, 10 * time.Minute, 4*time.Minute + 59*time.Second} { // up to 14:59 after signing
		hs.clock.Advance(d)
		status, body := hs.do(http.MethodPost, ps)
		assertError(t, status, body, 400, CodeNonceUsed)
	}
	if hs.snapshot() != before {
		t.Fatal("a replayed ApplyToken stored a token")
	}
	// Once the timestamp is out of the window, the replay is refused for that.
	hs.clock.Advance(2 * time.Second)
	status, body := hs.do(http.MethodPost, ps)
	assertError(t, status, body, 400, CodeTimestampExpired)
}

func TestNonceOfFailedSignatureIsNotBurnt(t *testing.T) {
	hs := newHarness(t)
	good := hs.signed(http.MethodPost, adminID, adminSecret, "ApplyToken", applyParams(hs, nil))
	bad := edit(good, map[string]string{"Signature": "AAAA"})
	status, body := hs.do(http.MethodPost, bad)
	assertError(t, status, body, 400, CodeSignatureDoesNotMatch)
	if status, body := hs.do(http.MethodPost, good); status != 200 {
		t.Fatalf("the real request after a forged one with its nonce: %d %v", status, body)
	}
}

func TestNonceCacheBounded(t *testing.T) {
	c := newNonceCache(15*time.Minute, 3)
	now := time.Unix(1_800_000_000, 0)
	for i := range 3 {
		if r := c.add("k", fmt.Sprint(i), now); r != nonceFresh {
			t.Fatalf("nonce %d: %v", i, r)
		}
	}
	if r := c.add("k", "3", now); r != nonceFull {
		t.Fatalf("fourth nonce in a cache of 3: %v, want nonceFull", r)
	}
	if r := c.add("k", "0", now.Add(29*time.Minute)); r != nonceUsed {
		t.Fatalf("nonce 0 after 29 min: %v, want nonceUsed", r)
	}
	// The bound is per key: another key is not crowded out by the first.
	for i := range 3 {
		if r := c.add("other-key", fmt.Sprint(i), now); r != nonceFresh {
			t.Fatalf("other key's nonce %d with the first key full: %v, want nonceFresh", i, r)
		}
	}
	if r := c.add("other-key", "3", now); r != nonceFull {
		t.Fatalf("other key past its own capacity: %v", r)
	}
	// After 3 windows every generation has rotated out, and room returns.
	later := now.Add(45 * time.Minute)
	if r := c.add("k", "0", later); r != nonceFresh {
		t.Fatalf("nonce 0 after 45 min: %v, want nonceFresh", r)
	}
	if n := c.count("k"); n != 1 {
		t.Fatalf("count %d after rotation, want 1", n)
	}
	if n := c.count("other-key"); n != 3 { // stored after the first rotation, in a younger generation
		t.Fatalf("other key's count %d, want its 3 still remembered", n)
	}
}

// SPEC §2.1: a broker key flooding QueryToken fills only its own share of
// the replay cache; an admin's RevokeToken still works.
func TestNonceFloodLeavesOtherKeys(t *testing.T) {
	hs := newHarness(t, withNonceCapacity(50))
	tok := hs.apply("inst-a", "a", "R", time.Hour)
	query := map[string]string{"InstanceId": "inst-a", "Token": tok}
	overflowed := false
	for range 60 {
		status, body := hs.do(http.MethodPost, hs.signed(http.MethodPost, brokerID, brokerSecret, "QueryToken", query))
		if status != 200 {
			assertError(t, status, body, 400, CodeSystemOverFlow)
			overflowed = true
		}
	}
	if !overflowed {
		t.Fatal("the broker key never reached its share")
	}
	if status, body := hs.call("RevokeToken", query); status != 200 {
		t.Fatalf("admin RevokeToken during a broker key's nonce flood: %d %v", status, body)
	}
}

func TestNonceCacheFullAnswersOverflow(t *testing.T) {
	hs := newHarness(t, withNonceCapacity(2))
	hs.apply("inst-a", "a", "R", time.Hour)
	hs.apply("inst-a", "a", "R", time.Hour)
	status, body := hs.call("ApplyToken", applyParams(hs, nil))
	assertError(t, status, body, 400, CodeSystemOverFlow) // one Code, one status: see statuses
}

func TestRateLimits(t *testing.T) {
	hs := newHarness(t, withRateLimits(RateLimits{ApplyToken: 2, QueryToken: 3, BrokerQueryToken: 0, Other: 1}))
	tok := hs.apply("inst-a", "a", "R", time.Hour)
	hs.apply("inst-a", "a", "R", time.Hour)
	before := hs.snapshot()
	status, body := hs.call("ApplyToken", applyParams(hs, nil))
	assertError(t, status, body, 400, CodeApplyTokenOverFlow)
	if hs.snapshot() != before {
		t.Fatal("a rate-limited ApplyToken stored a token")
	}
	query := map[string]string{"InstanceId": "inst-a", "Token": tok}
	for range 3 {
		if status, body := hs.call("QueryToken", query); status != 200 {
			t.Fatalf("QueryToken within limit: %d %v", status, body)
		}
	}
	status, body = hs.call("QueryToken", query)
	assertError(t, status, body, 400, CodeQueryTokenOverFlow)
	// Keys of role broker are not limited by default.
	for range 20 {
		status, body := hs.do(http.MethodPost, hs.signed(http.MethodPost, brokerID, brokerSecret, "QueryToken", query))
		if status != 200 {
			t.Fatalf("broker QueryToken: %d %v", status, body)
		}
	}
	if status, body := hs.call("ListTokens", map[string]string{"InstanceId": "inst-a"}); status != 200 {
		t.Fatalf("ListTokens within limit: %d %v", status, body)
	}
	status, body = hs.call("RevokeToken", query)
	assertError(t, status, body, 400, CodeSystemOverFlow)
	// Limits are per key: another admin key still has its budget.
	ps := hs.signed(http.MethodPost, limitedID, limitedSecret, "ApplyToken", applyParams(hs, map[string]string{"InstanceId": "inst-b"}))
	if status, body := hs.do(http.MethodPost, ps); status != 200 {
		t.Fatalf("another key's ApplyToken: %d %v", status, body)
	}
	// A second later the bucket has refilled.
	hs.clock.Advance(time.Second)
	if status, body := hs.call("ApplyToken", applyParams(hs, nil)); status != 200 {
		t.Fatalf("ApplyToken a second later: %d %v", status, body)
	}
}

func TestListTokensOverHTTP(t *testing.T) {
	hs := newHarness(t)
	var toks []string
	for range 5 {
		toks = append(toks, hs.apply("inst-a", "x/+", "W", time.Hour))
		hs.clock.Advance(time.Millisecond)
	}
	hs.apply("inst-b", "y", "R", time.Hour)
	if status, _ := hs.call("RevokeToken", map[string]string{"InstanceId": "inst-a", "Token": toks[1]}); status != 200 {
		t.Fatal("revoke failed")
	}
	var ids []string
	revoked := 0
	next := ""
	for range 5 {
		extra := map[string]string{"InstanceId": "inst-a", "PageSize": "2"}
		if next != "" {
			extra["NextToken"] = next
		}
		status, body := hs.call("ListTokens", extra)
		if status != 200 {
			t.Fatalf("ListTokens: %d %v", status, body)
		}
		for _, it := range body["Tokens"].([]any) {
			m := it.(map[string]any)
			ids = append(ids, m["TokenId"].(string))
			if m["Revoked"] == true {
				revoked++
			}
			for _, tok := range toks {
				for _, v := range m {
					if s, ok := v.(string); ok && s == tok {
						t.Fatal("ListTokens shows a token")
					}
				}
			}
			if m["Actions"] != "W" || m["Resources"] != "x/+" || m["Name"] != m["TokenId"] {
				t.Fatalf("token info %v", m)
			}
		}
		if next = body["NextToken"].(string); next == "" {
			break
		}
	}
	if len(ids) != 5 || revoked != 1 {
		t.Fatalf("listed %d tokens (%d revoked), want 5 (1 revoked)", len(ids), revoked)
	}
}

func TestClientAgainstServer(t *testing.T) {
	hs := newHarness(t)
	c := &Client{Endpoint: hs.srv.URL, AccessKeyID: adminID, AccessKeySecret: adminSecret}
	ctx := context.Background()
	applied, err := c.ApplyToken(ctx, ApplyTokenRequest{InstanceID: "inst-a", Resources: []string{"a/#"}, Actions: "R", ExpireTime: hs.clock.Now().Add(time.Hour), Name: "n"})
	if err != nil {
		t.Fatal(err)
	}
	q, err := c.QueryToken(ctx, "inst-a", applied.Token)
	if err != nil || !q.TokenStatus || q.Resources != "a/#" {
		t.Fatalf("QueryToken = %+v, %v", q, err)
	}
	info, err := c.GetURocketMQToken(ctx, "inst-a", q.TokenId, true)
	if err != nil || info.AKSK.SecretKey != applied.Token || info.Name != "n" {
		t.Fatalf("GetURocketMQToken = %+v, %v", info, err)
	}
	_, err = c.ApplyToken(ctx, ApplyTokenRequest{InstanceID: "inst-a", Resources: []string{"a/#/b"}, Actions: "R", ExpireTime: hs.clock.Now().Add(time.Hour)})
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.Code != "InvalidParameter.Resources" || apiErr.Status != 400 || apiErr.RequestID == "" {
		t.Fatalf("bad ApplyToken through Client: %v", err)
	}
	bad := &Client{Endpoint: hs.srv.URL, AccessKeyID: adminID, AccessKeySecret: "not-the-secret-000"}
	if _, err := bad.QueryToken(ctx, "inst-a", applied.Token); !errors.As(err, &apiErr) || apiErr.Code != CodeSignatureDoesNotMatch {
		t.Fatalf("wrong secret through Client: %v", err)
	}
}

// The revocation feed over HTTP, with a broker key: Validate and Feed are
// what a broker in another process uses.
func TestBrokerClientValidateAndFeed(t *testing.T) {
	hs := newHarness(t)
	hs.clock.Set(time.Now()) // the feed's long poll uses real timers
	admin := &Client{Endpoint: hs.srv.URL, AccessKeyID: adminID, AccessKeySecret: adminSecret}
	broker := &Client{Endpoint: hs.srv.URL, AccessKeyID: brokerID, AccessKeySecret: brokerSecret}
	ctx := context.Background()
	applied, err := admin.ApplyToken(ctx, ApplyTokenRequest{InstanceID: "inst-a", Resources: []string{"b/#", "a/+"}, Actions: "W", ExpireTime: hs.clock.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	g, err := broker.Validate(ctx, "inst-a", applied.Token)
	if err != nil || g.Actions.String() != "W" || len(g.Resources) != 2 || g.AccessKeyID != adminID {
		t.Fatalf("Validate = %+v, %v", g, err)
	}
	if _, err := broker.Validate(ctx, "inst-a", "garbage"); !errors.Is(err, token.ErrNotFound) {
		t.Fatalf("Validate(garbage) = %v, want token.ErrNotFound", err)
	}
	if _, err := broker.Validate(ctx, "inst-z", applied.Token); err == nil || token.IsDenied(err) {
		t.Fatalf("Validate on an unserved instance = %v, want an error that is not a denial", err)
	}

	done := make(chan token.FeedPage, 1)
	go func() {
		p, err := broker.Feed(ctx, "inst-a", 0, 20*time.Second)
		if err != nil {
			t.Error(err)
		}
		done <- p
	}()
	testkit.WaitFor(t, 5*time.Second, "the feed's long poll", func() bool { return hs.svc.Waiters() > 0 })
	start := time.Now()
	if _, err := admin.RevokeToken(ctx, "inst-a", applied.Token); err != nil {
		t.Fatal(err)
	}
	p := <-done
	if len(p.Revocations) != 1 || p.Revocations[0].ID != g.TokenID || p.Next != 1 {
		t.Fatalf("feed page %+v", p)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("long poll answered %v after the revocation", d)
	}
	for _, bad := range []map[string]string{
		{"InstanceId": "inst-a", "After": "-1"},
		{"InstanceId": "inst-a", "WaitSeconds": "26"},
	} {
		status, body := hs.do(http.MethodPost, hs.signed(http.MethodPost, brokerID, brokerSecret, "ListRevocations", bad))
		if status != 400 || !strings.HasPrefix(body["Code"].(string), "InvalidParameter.") {
			t.Errorf("%v: %d %v", bad, status, body)
		}
	}
}

// sharedMemory stands in for a store shared by replicas (PostgreSQL in
// production; e2e runs the real thing).
type sharedMemory struct {
	mu     sync.Mutex
	nonces map[[32]byte]bool
	calls  map[string]int64
}

func (m *sharedMemory) UseNonce(_ context.Context, h [32]byte, _ time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.nonces[h] {
		return false, nil
	}
	m.nonces[h] = true
	return true, nil
}

func (m *sharedMemory) CountCall(_ context.Context, key string, w time.Time) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := fmt.Sprintf("%s@%d", key, w.UnixMilli())
	m.calls[k]++
	return m.calls[k], nil
}

// Two replicas sharing a nonce and rate store: a nonce used on one is
// refused by the other, and the limit counts calls on both.
func TestSharedReplayAndRateAcrossReplicas(t *testing.T) {
	shared := &sharedMemory{nonces: map[[32]byte]bool{}, calls: map[string]int64{}}
	opts := func(c *Config) {
		c.SharedNonces, c.SharedRates = shared, shared
		c.RateLimits = RateLimits{ApplyToken: 2}
	}
	a := newHarness(t, opts)
	// B reads A's clock: two clocks started a moment apart may sit in
	// different one-second windows.
	b := newHarness(t, opts, func(c *Config) { c.Now = a.clock.Now })
	b.clock = a.clock
	ps := a.signed(http.MethodPost, adminID, adminSecret, "ApplyToken", applyParams(a, nil))
	if status, body := a.do(http.MethodPost, ps); status != 200 {
		t.Fatalf("replica A: %d %v", status, body)
	}
	// The same signed request replayed to replica B (B's own store lacks the
	// token's instance data, but the nonce check comes first).
	status, body := b.do(http.MethodPost, ps)
	assertError(t, status, body, 400, CodeNonceUsed)

	if status, body := b.call("ApplyToken", applyParams(b, nil)); status != 200 {
		t.Fatalf("replica B's own call: %d %v", status, body)
	}
	// Two calls counted in this second (one on A, one on B): the third is over.
	status, body = a.call("ApplyToken", applyParams(a, nil))
	assertError(t, status, body, 400, CodeApplyTokenOverFlow)
}

func TestExplainAccess(t *testing.T) {
	hs := newHarness(t)
	c := &Client{Endpoint: hs.srv.URL, AccessKeyID: adminID, AccessKeySecret: adminSecret}
	ctx := context.Background()
	tok := hs.apply("inst-a", "dev/+/up,cmd/#", "R", time.Hour)
	q, _ := c.QueryToken(ctx, "inst-a", tok)
	revoked := hs.apply("inst-a", "dev/#", "R,W", time.Hour)
	c.RevokeToken(ctx, "inst-a", revoked)
	bound := hs.apply("inst-a", "devices/${clientid}/#", "R,W", time.Hour, "ClientId", "pump-*")
	for _, tc := range []struct {
		tokenOrID, topic, action string
		allowed                  bool
		resource, reason         string
		clientID                 string
	}{
		{tok, "dev/7/up", "subscribe", true, "dev/+/up", "contains", ""},
		{q.TokenId, "dev/+/up", "subscribe", true, "dev/+/up", "contains", ""},
		{tok, "dev/#", "subscribe", false, "dev/+/up", "level 2", ""},
		{tok, "cmd/x", "publish", false, "", "Actions (R) do not include publish (W)", ""},
		{revoked, "dev/x", "subscribe", false, "", "the token is revoked", ""},
		{"garbage", "dev/x", "subscribe", false, "", "not a token of this instance", ""},
		{strings.Repeat("0", 32), "dev/x", "subscribe", false, "", "not a token of this instance", ""},
		{bound, "devices/pump-1/up", "publish", true, "devices/pump-1/#", "", "pump-1"},
		{bound, "devices/pump-2/up", "publish", false, "devices/pump-1/#", "level 2", "pump-1"},
		{bound, "devices/pump-1/up", "publish", false, "", "bound to other client IDs (pump-*)", "valve-1"},
		{bound, "devices/${clientid}/x", "subscribe", true, "devices/${clientid}/#", "", ""}, // no client: the placeholder as it is
	} {
		got, err := c.ExplainAccess(ctx, "inst-a", tc.tokenOrID, tc.topic, tc.action, tc.clientID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Allowed != tc.allowed || got.Resource != tc.resource || !strings.Contains(got.Reason, tc.reason) {
			t.Errorf("%.10s %s %s: %+v; want allowed=%v resource=%q reason ~%q", tc.tokenOrID, tc.action, tc.topic, got, tc.allowed, tc.resource, tc.reason)
		}
	}
	var apiErr *Error
	if _, err := c.ExplainAccess(ctx, "inst-a", tok, "x", "delete", ""); !errors.As(err, &apiErr) || apiErr.Code != "InvalidParameter.Operation" {
		t.Fatalf("bad action: %v", err)
	}
	broker := &Client{Endpoint: hs.srv.URL, AccessKeyID: brokerID, AccessKeySecret: brokerSecret}
	if _, err := broker.ExplainAccess(ctx, "inst-a", tok, "x", "publish", ""); !errors.As(err, &apiErr) || apiErr.Code != CodePermission {
		t.Fatalf("broker key: %v", err)
	}
}
