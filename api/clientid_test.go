package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// ApplyToken's ClientId binds a token to client IDs (exact or "prefix*");
// QueryToken and ListTokens return it as stored (sorted, de-duplicated).
func TestApplyTokenClientId(t *testing.T) {
	hs := newHarness(t)
	tok := hs.apply("inst-a", "devices/${clientid}/#", "R,W", time.Hour, "ClientId", "pump-2,GID_pump@@@*,pump-2")
	status, body := hs.call("QueryToken", map[string]string{"InstanceId": "inst-a", "Token": tok})
	if status != 200 || body["TokenStatus"] != true || body["ClientId"] != "GID_pump@@@*,pump-2" || body["Resources"] != "devices/${clientid}/#" {
		t.Fatalf("QueryToken: %d %v", status, body)
	}
	unbound := hs.apply("inst-a", "a", "R", time.Hour)
	status, body = hs.call("QueryToken", map[string]string{"InstanceId": "inst-a", "Token": unbound})
	if _, has := body["ClientId"]; status != 200 || has {
		t.Fatalf("an unbound token answers ClientId: %v", body)
	}
	status, body = hs.call("ListTokens", map[string]string{"InstanceId": "inst-a"})
	if status != 200 {
		t.Fatalf("ListTokens: %d %v", status, body)
	}
	var bound []string
	for _, ti := range body["Tokens"].([]any) {
		if c, ok := ti.(map[string]any)["ClientId"].(string); ok {
			bound = append(bound, c)
		}
	}
	if !slices.Equal(bound, []string{"GID_pump@@@*,pump-2"}) {
		t.Fatalf("ListTokens ClientIds %q", bound)
	}

	// The HTTP client (a broker's Validator) reads the binding back.
	c := &Client{Endpoint: hs.srv.URL, AccessKeyID: brokerID, AccessKeySecret: brokerSecret}
	hs.clock.Set(time.Now())
	g, err := c.Validate(t.Context(), "inst-a", tok)
	if err != nil || !slices.Equal(g.ClientIDs, []string{"GID_pump@@@*", "pump-2"}) {
		t.Fatalf("Validate: %+v, %v", g, err)
	}
}

// A malformed ClientId is 400 InvalidParameter.ClientId saying what is
// wrong, and stores nothing.
func TestApplyTokenClientIdInvalid(t *testing.T) {
	hs := newHarness(t)
	for _, tc := range []struct{ value, says string }{
		{"", "is empty"},
		{"a,,b", "client ID 2"},
		{"a*b", "'*'"},
		{"**", "'*'"},
		{"a\x00b", "NUL"},
		{strings.Repeat("x,", 100) + "x", "101 client IDs"},
		{"\xff", "UTF-8"},
	} {
		before := hs.snapshot()
		ps := applyParams(hs, nil)
		ps["ClientId"] = tc.value
		status, body := hs.call("ApplyToken", ps)
		assertError(t, status, body, 400, "InvalidParameter.ClientId")
		if msg, _ := body["Message"].(string); !strings.Contains(msg, tc.says) {
			t.Errorf("ClientId %q: message %q does not say %q", tc.value, msg, tc.says)
		}
		if hs.snapshot() != before {
			t.Fatalf("ClientId %q: a refused ApplyToken stored a token", tc.value)
		}
	}
}

// The EMQX webhook applies the binding and puts the request's clientid in
// place of ${clientid}; resources EMQX would read otherwise are left out.
func TestEMQXWebhookClientBinding(t *testing.T) {
	hs := newHarness(t)
	srv := httptest.NewServer(NewEMQXAuth(hs.svc, "inst-a", "s", true, hs.h.log))
	t.Cleanup(srv.Close)
	post := func(clientID, password string) map[string]any {
		b, _ := json.Marshal(EMQXRequest{ClientID: clientID, Username: "d", Password: password})
		req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer s")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return out
	}
	topics := func(body map[string]any, action string) []string {
		var out []string
		for _, r := range body["acl"].([]any) {
			m := r.(map[string]any)
			if m["action"] == action && m["permission"] == "allow" {
				out = append(out, m["topic"].(string))
			}
		}
		return out
	}
	tok := hs.apply("inst-a", "devices/${clientid}/#,fleet/${username}/x,eq a/#,shared/in", "R,W", time.Hour, "ClientId", "dev-1,GID_x*")
	if body := post("other", tok); body["result"] != "deny" {
		t.Fatalf("a client ID the token does not name: %v", body)
	}
	body := post("dev-1", tok)
	if body["result"] != "allow" || !slices.Equal(topics(body, "publish"), []string{"devices/dev-1/#", "shared/in"}) {
		t.Fatalf("dev-1: %v", body)
	}
	body = post("GID_x/7", tok) // allowed by the prefix, but cannot stand as a level
	if body["result"] != "allow" || !slices.Equal(topics(body, "publish"), []string{"shared/in"}) {
		t.Fatalf("GID_x/7: %v", body)
	}
}
