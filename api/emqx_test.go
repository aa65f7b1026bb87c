package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/acl"
	"github.com/tokenmq/tokenmq/internal/testkit"
)

// emqxMatch is EMQX's topic match (emqx_topic:match/2) as its
// documentation and source describe it: the name (a topic, or for a
// subscription the filter itself, wildcards as plain words) against a rule
// filter; "eq F" rules match only F exactly; a filter starting with a
// wildcard does not match '$' names.
func emqxMatch(name, rule string) bool {
	if exact, ok := strings.CutPrefix(rule, "eq "); ok {
		return name == exact
	}
	if strings.HasPrefix(name, "$") && (strings.HasPrefix(rule, "+") || strings.HasPrefix(rule, "#")) {
		return false
	}
	n, f := strings.Split(name, "/"), strings.Split(rule, "/")
	for i, w := range f {
		if w == "#" {
			return true
		}
		if i >= len(n) || (w != "+" && w != n[i]) {
			return false
		}
	}
	return len(n) == len(f)
}

// emqxDecide evaluates an ACL the way EMQX does: the first matching rule wins.
func emqxDecide(rules []EMQXRule, action, topic string) bool {
	for _, r := range rules {
		if (r.Action == action || r.Action == "all") && emqxMatch(topic, r.Topic) {
			return r.Permission == "allow"
		}
	}
	return false // with the final deny-all, only '$' topics get here
}

// What EMQX will allow with our rules is never more than tokenmq allows;
// publishing is exactly the same, and so is subscribing to plain topics,
// except under resources like "+/+" whose '+' riders cannot be listed
// (there EMQX allows only the resource itself: less, never more).
func TestEMQXACLNeverExceedsTokenmq(t *testing.T) {
	words := []string{"a", "b", "+", "#"}
	var filters []string
	for _, f := range testkit.Levels(words, 3) {
		if acl.ValidateFilter(f) == nil {
			filters = append(filters, f)
		}
	}
	var topics []string
	for _, f := range testkit.Levels([]string{"a", "b", "c"}, 4) {
		topics = append(topics, f)
	}
	for _, resources := range [][]string{
		{"a/+"}, {"a/+/#"}, {"+/b"}, {"a/#"}, {"a", "a/+", "a/+/#"}, {"+/+"}, {"a/b", "a/+/b"}, {"#"}, {"+/#"}, {"a/+", "a/#"},
	} {
		rules := EMQXACL(resources, resources)
		ours, err := acl.Compile(resources)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range filters {
			emqx, tokenmq := emqxDecide(rules, "subscribe", f), ours.Covers(f)
			if emqx && !tokenmq {
				t.Errorf("resources %q: EMQX would let %q be subscribed, tokenmq denies it", resources, f)
			}
		}
		for _, tp := range topics {
			if emqx, tokenmq := emqxDecide(rules, "publish", tp), ours.Match(tp); emqx != tokenmq {
				t.Errorf("resources %q, publish %q: EMQX %v, tokenmq %v", resources, tp, emqx, tokenmq)
			}
			emqx, tokenmq := emqxDecide(rules, "subscribe", tp), ours.Match(tp)
			if emqx && !tokenmq || tokenmq && !emqx && !strings.Contains(strings.Join(resources, ","), "+/+") {
				t.Errorf("resources %q, subscribe %q: EMQX %v, tokenmq %v", resources, tp, emqx, tokenmq)
			}
		}
	}
}

func TestEMQXWebhook(t *testing.T) {
	hs := newHarness(t)
	hook := NewEMQXAuth(hs.svc, "inst-a", "webhook-secret", true, hs.h.log)
	srv := httptest.NewServer(hook)
	defer srv.Close()
	post := func(bearer string, body any) (int, map[string]any) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/mqtt/auth", bytes.NewReader(b))
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	tok := hs.apply("inst-a", "dev/+/up,cmd/#", "R,W", time.Hour)
	exp := float64(hs.clock.Now().Add(time.Hour).Unix())

	if status, _ := post("", EMQXRequest{Username: "d", Password: tok}); status != 401 {
		t.Fatalf("no bearer: %d", status)
	}
	if status, _ := post("wrong", EMQXRequest{Username: "d", Password: tok}); status != 401 {
		t.Fatalf("wrong bearer: %d", status)
	}
	status, body := post("webhook-secret", EMQXRequest{ClientID: "c1", Username: "d", Password: tok})
	if status != 200 {
		t.Fatalf("valid token: %d %v", status, body)
	}
	// EMQX 5 HTTP authentication response schema.
	if body["result"] != "allow" || body["is_superuser"] != false || body["expire_at"] != exp {
		t.Fatalf("response %v", body)
	}
	rules, ok := body["acl"].([]any)
	if !ok || len(rules) == 0 {
		t.Fatalf("acl %v", body["acl"])
	}
	for _, r := range rules {
		m := r.(map[string]any)
		if len(m) != 3 {
			t.Fatalf("rule %v: want permission, action, topic", m)
		}
		if p := m["permission"]; p != "allow" && p != "deny" {
			t.Fatalf("rule %v: permission", m)
		}
		if a := m["action"]; a != "publish" && a != "subscribe" && a != "all" {
			t.Fatalf("rule %v: action", m)
		}
		if _, ok := m["topic"].(string); !ok {
			t.Fatalf("rule %v: topic", m)
		}
	}
	if last := rules[len(rules)-1].(map[string]any); last["permission"] != "deny" || last["topic"] != "#" {
		t.Fatalf("the ACL does not end with deny-all: %v", last)
	}
	for _, bad := range []EMQXRequest{
		{Username: "d", Password: "garbage"},
		{Username: "d", Password: tok[:40] + "AAAA" + tok[44:]},
		{Username: "d"},
		{Username: "Token|" + adminID + "|inst-b", Password: "RW|" + tok},
		{Username: "Token|AKOTHER|inst-a", Password: "RW|" + tok},
	} {
		if status, body := post("webhook-secret", bad); status != 200 || body["result"] != "deny" {
			t.Errorf("%+v: %d %v, want 200 deny", bad, status, body)
		}
	}
	if status, body := post("webhook-secret", EMQXRequest{Username: "Token|" + adminID + "|inst-a", Password: "R|" + tok}); status != 200 || body["result"] != "allow" {
		t.Fatalf("apsara form: %d %v", status, body)
	}
}
