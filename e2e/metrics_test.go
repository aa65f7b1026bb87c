package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/tokenmq/tokenmq/config"
	"github.com/tokenmq/tokenmq/internal/testkit"
)

// scrape reads /metrics and lints it.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := readAll(resp)
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.New(strings.NewReader(raw)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "tokenmq_") {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// value returns a metric's value (counter, gauge, or a histogram's count)
// for the given labels; 0 if absent.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
	var total float64
	for _, m := range f.Metric {
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			match = match && found
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		}
	}
	return total
}

// SPEC §5 and issue 7: every metric moves as a session does what it counts.
func TestMetricsMoveWithTheSession(t *testing.T) {
	e := startEnv(t, shortTTL)
	base := "http://" + e.srv.APIAddr().String()
	before := scrape(t, base)

	tok := e.apply("dev/#", "R,W", time.Hour)
	dev := mustConnect5(t, e.mqtt, "dev", "d", tok)
	mustConnect5(t, e.mqtt, "dev-again", "d", tok) // a cache hit
	connect5(t, e.mqtt, "forged", "d", tok[:30]+"AAAA"+tok[34:])
	dev.publish("other/x", 1, false, "denied")
	dev.subscribe("other/#", 1)
	dev.publish("$SYS/uploadToken", 1, false, fmt.Sprintf(`{"token":%q,"type":"RW"}`, e.apply("dev/#", "R,W", time.Hour)))
	expiring := mustConnect5(t, e.mqtt, "expiring", "d", e.apply("dev/#", "R", time.Second))
	victimTok := e.apply("dev/#", "R,W", time.Hour)
	victim := mustConnect5(t, e.mqtt, "victim", "d", victimTok)
	during := scrape(t, base)
	e.revoke(victimTok)
	victim.waitClosed(2 * time.Second)
	expiring.waitClosed(3 * time.Second)
	after := scrape(t, base)

	for _, c := range []struct {
		name   string
		labels []string
		min    float64
	}{
		{"tokenmq_connect_decisions_total", []string{"result", "accepted", "reason", "ok"}, 4},
		{"tokenmq_connect_decisions_total", []string{"result", "refused", "reason", "forged_token"}, 1},
		{"tokenmq_acl_denials_total", []string{"action", "publish"}, 1},
		{"tokenmq_acl_denials_total", []string{"action", "subscribe"}, 1},
		{"tokenmq_token_renewals_total", []string{"result", "renewed"}, 1},
		{"tokenmq_token_disconnects_total", []string{"reason", "revoked"}, 1},
		{"tokenmq_token_disconnects_total", []string{"reason", "expired"}, 1},
		{"tokenmq_revocation_propagation_seconds", nil, 1},
		{"tokenmq_revocations_total", nil, 1},
		{"tokenmq_tokens_issued_total", nil, 4},
		{"tokenmq_token_cache_hits_total", nil, 1},
		{"tokenmq_token_cache_misses_total", nil, 4},
		{"tokenmq_token_queries_total", nil, 4},
		{"tokenmq_token_store_lookups_total", nil, 3},
		{"tokenmq_api_requests_total", []string{"action", "ApplyToken", "code", "OK"}, 4},
		{"tokenmq_api_requests_total", []string{"action", "RevokeToken", "code", "OK"}, 1},
		{"tokenmq_api_request_duration_seconds", []string{"action", "ApplyToken"}, 4},
		{"tokenmq_token_validation_duration_seconds", []string{"outcome", "valid"}, 3},
	} {
		if d := value(after, c.name, c.labels...) - value(before, c.name, c.labels...); d < c.min {
			t.Errorf("%s%v moved by %v, want at least %v", c.name, c.labels, d, c.min)
		}
	}
	if v := value(during, "tokenmq_connected_clients"); v != 4 {
		t.Errorf("tokenmq_connected_clients = %v with 4 clients connected", v)
	}
	if v := value(after, "tokenmq_token_cache_entries"); v < 1 {
		t.Errorf("tokenmq_token_cache_entries = %v", v)
	}
	// Every metric the Grafana dashboard queries is one this process
	// exports, now that the session has moved them all.
	names := dashboardMetrics(t)
	if len(names) < 15 {
		t.Fatalf("the dashboard queries only %d metrics: %v", len(names), names)
	}
	for _, name := range names {
		if after[name] == nil {
			t.Errorf("deploy/grafana/tokenmq.json queries %s, which /metrics does not export", name)
		}
	}
}

// dashboardMetrics returns the metric families deploy/grafana/tokenmq.json's
// queries name (a histogram's _bucket, _sum and _count are its family).
func dashboardMetrics(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile("../deploy/grafana/tokenmq.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("deploy/grafana/tokenmq.json: %v", err)
	}
	seen := map[string]bool{}
	var names []string
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("dashboard panel %q has no query", p.Title)
		}
		for _, target := range p.Targets {
			found := metricName.FindAllString(target.Expr, -1)
			if len(found) == 0 {
				t.Errorf("dashboard panel %q: query %q names no tokenmq metric", p.Title, target.Expr)
			}
			for _, n := range found {
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					n = strings.TrimSuffix(n, suffix)
				}
				if !seen[n] {
					seen[n] = true
					names = append(names, n)
				}
			}
		}
	}
	return names
}

var metricName = regexp.MustCompile(`tokenmq_[a-z_]+`)

// /metrics is served in every role.
func TestMetricsInEveryRole(t *testing.T) {
	tokens, brk, _ := splitInProcess(t)
	for _, base := range []string{"http://" + tokens.APIAddr().String(), "http://" + brk.APIAddr().String()} {
		if fams := scrape(t, base); len(fams) == 0 {
			t.Fatalf("%s/metrics is empty", base)
		}
	}
}

// Issue 12: the session metrics move with what they count.
func TestSessionMetricsMove(t *testing.T) {
	e := startEnv(t, func(c *config.Config) { c.Broker.MaxQueuedMessages, c.Broker.MaxSessionExpiry = 2, 2*time.Second })
	base := "http://" + e.srv.APIAddr().String()
	before := scrape(t, base)
	sub := connectSession(t, 5, e.mqtt, "dev", e.apply("m/#", "R", time.Hour))
	sub.subscribe("m/#", 1)
	sub.close()
	testkit.WaitFor(t, 2*time.Second, "the session to be offline", func() bool { return e.srv.Hook().QueueStats().Offline == 1 })
	during := scrape(t, base)
	pub := mustConnect5(t, e.mqtt, "pub", "d", e.apply("m/#,fence", "W", time.Hour))
	for range 3 {
		pub.publish("m/x", 1, false, "x")
	}
	pub.routed("fence") // all three met the offline session
	thief := connectSession(t, 5, e.mqtt, "dev", e.apply("other/#", "R", time.Hour))
	thief.close()
	testkit.WaitFor(t, 6*time.Second, "the session to expire", func() bool { return e.srv.Hook().QueueStats().ExpiredSessions == 1 })
	after := scrape(t, base)
	for _, c := range []struct {
		name string
		want float64
	}{
		{"tokenmq_session_messages_queued_total", 2},
		{"tokenmq_session_messages_dropped_queue_full_total", 1},
		{"tokenmq_session_messages_dropped_on_resume_total", 2},
		{"tokenmq_sessions_expired_total", 1},
	} {
		if d := value(after, c.name) - value(before, c.name); d != c.want {
			t.Errorf("%s moved by %v, want %v", c.name, d, c.want)
		}
	}
	if v := value(during, "tokenmq_sessions_offline"); v != 1 {
		t.Errorf("tokenmq_sessions_offline = %v with one session offline", v)
	}
	if v := value(after, "tokenmq_sessions_offline"); v != 0 {
		t.Errorf("tokenmq_sessions_offline = %v after it expired", v)
	}
}
