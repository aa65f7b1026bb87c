package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tokenmq/tokenmq/internal/testkit"
	"github.com/tokenmq/tokenmq/internal/tokentest"
	"github.com/tokenmq/tokenmq/token"
	"github.com/tokenmq/tokenmq/token/boltstore"
)

// Test access keys.
const (
	adminID, adminSecret     = "AKADMIN0000001", "admin-secret-0123456789"
	brokerID, brokerSecret   = "AKBROKER000001", "broker-secret-0123456789"
	limitedID, limitedSecret = "AKLIMITED00001", "limited-secret-0123456789"
)

type harness struct {
	t       testing.TB
	h       *Handler
	svc     *token.Service
	store   *boltstore.Store
	keyring *token.Keyring
	clock   *testkit.Clock
	srv     *httptest.Server // on 127.0.0.1:0
}

type harnessOption func(*Config)

func withRateLimits(l RateLimits) harnessOption { return func(c *Config) { c.RateLimits = l } }
func withNonceCapacity(n int) harnessOption     { return func(c *Config) { c.NonceCapacity = n } }
func withMaxBody(n int64) harnessOption         { return func(c *Config) { c.MaxBodyBytes = n } }

// newHarness starts a token API over a fresh bbolt store, serving
// instances inst-a and inst-b, with an admin key, a broker key and an admin
// key limited to inst-b.
func newHarness(t testing.TB, opts ...harnessOption) *harness {
	t.Helper()
	ts := tokentest.NewService(t, time.Time{}, token.ServiceConfig{})
	svc, st, clk := ts.Service, ts.Store, ts.Clock
	keys, err := NewKeys([]AccessKey{
		{ID: adminID, Secret: adminSecret, Role: RoleAdmin},
		{ID: brokerID, Secret: brokerSecret, Role: RoleBroker},
		{ID: limitedID, Secret: limitedSecret, Role: RoleAdmin, Instances: []string{"inst-b"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Service: svc, Keys: keys, Now: clk.Now, Logger: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(&cfg)
	}
	h, err := NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &harness{t: t, h: h, svc: svc, store: st, keyring: ts.Keyring, clock: clk, srv: srv}
}

// signed returns the parameters of an action call by key, signed for method.
func (hs *harness) signed(method, keyID, secret, action string, extra map[string]string) map[string]string {
	ps := map[string]string{
		"Action": action, "Format": "JSON", "Version": APIVersion, "AccessKeyId": keyID,
		"SignatureMethod": SignatureHMACSHA1, "SignatureVersion": "1.0", "SignatureType": "",
		"SignatureNonce": uuid.NewString(), "Timestamp": hs.clock.Now().UTC().Format(timestampLayout),
		"RegionId": "cn-hangzhou",
	}
	for k, v := range extra {
		ps[k] = v
	}
	ps["Signature"] = Sign(method, ps["SignatureMethod"], secret, ps)
	return ps
}

// do sends ps as a POST form (or GET query) and returns status and decoded body.
func (hs *harness) do(method string, ps map[string]string) (int, map[string]any) {
	hs.t.Helper()
	form := url.Values{}
	for k, v := range ps {
		form.Set(k, v)
	}
	var req *http.Request
	if method == http.MethodGet {
		req, _ = http.NewRequest(method, hs.srv.URL+"/?"+form.Encode(), nil)
	} else {
		req, _ = http.NewRequest(method, hs.srv.URL+"/", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return hs.send(req)
}

func (hs *harness) send(req *http.Request) (int, map[string]any) {
	hs.t.Helper()
	resp, err := hs.srv.Client().Do(req)
	if err != nil {
		hs.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var body map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		hs.t.Fatalf("response is not JSON: %v: %s", err, b)
	}
	return resp.StatusCode, body
}

// call signs an admin call and POSTs it.
func (hs *harness) call(action string, extra map[string]string) (int, map[string]any) {
	hs.t.Helper()
	return hs.do(http.MethodPost, hs.signed(http.MethodPost, adminID, adminSecret, action, extra))
}

// apply issues a token through the API and returns it.
func (hs *harness) apply(inst, resources, actions string, ttl time.Duration, extra ...string) string {
	hs.t.Helper()
	ps := map[string]string{
		"InstanceId": inst, "Resources": resources, "Actions": actions,
		"ExpireTime": fmt.Sprint(hs.clock.Now().Add(ttl).UnixMilli()),
	}
	for i := 0; i+1 < len(extra); i += 2 { // more parameters, as name, value pairs
		ps[extra[i]] = extra[i+1]
	}
	status, body := hs.call("ApplyToken", ps)
	if status != http.StatusOK {
		hs.t.Fatalf("ApplyToken: %d %v", status, body)
	}
	return body["Token"].(string)
}

// snapshot describes everything in the store, to show a request changed nothing.
func (hs *harness) snapshot() string {
	hs.t.Helper()
	var lines []string
	for _, inst := range []string{"inst-a", "inst-b"} {
		recs, err := hs.store.List(context.Background(), inst, nil, 1<<20)
		if err != nil {
			hs.t.Fatal(err)
		}
		for _, r := range recs {
			lines = append(lines, fmt.Sprintf("%s %s revoked=%v", inst, r.ID, r.Revoked))
		}
	}
	revs, err := hs.store.Revocations(context.Background(), 0, 1<<20)
	if err != nil {
		hs.t.Fatal(err)
	}
	lines = append(lines, fmt.Sprintf("revocations=%d", len(revs)))
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// assertError checks an Alibaba error response: status, Code, and that
// every field of the body is a string (the Go SDK panics otherwise).
func assertError(t testing.TB, status int, body map[string]any, wantStatus int, wantCode string) {
	t.Helper()
	if status != wantStatus || body["Code"] != wantCode {
		t.Fatalf("got %d %v, want %d %s", status, body, wantStatus, wantCode)
	}
	for _, f := range []string{"RequestId", "HostId", "Code", "Message", "Recommend"} {
		if _, ok := body[f].(string); !ok {
			t.Fatalf("error body field %s is %T, want string: %v", f, body[f], body)
		}
	}
	if _, err := uuid.Parse(body["RequestId"].(string)); err != nil {
		t.Fatalf("RequestId %q is not a UUID", body["RequestId"])
	}
}
