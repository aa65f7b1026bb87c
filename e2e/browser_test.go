package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/api"
	"github.com/tokenmq/tokenmq/internal/testkit"
)

// A real browser: MQTT.js (from the npm registry) in headless Chromium
// (Debian's, driven by playwright-core) over WebSocket to the tokenmq
// binary, MQTT 5 and 3.1.1. The page gets a short-lived token from its
// backend, connects, receives, gets $SYS/tokenExpireNotice, renews through
// $SYS/uploadToken and is still connected past the first token's expiry;
// a page that does not renew is disconnected at expiry.
//
// It needs Debian's chromium, Node.js and the packages of e2e/browser
// (`apt-get install chromium nodejs npm && npm ci --prefix e2e/browser`);
// without them it skips, and TOKENMQ_REQUIRE_BROWSER=1 (set by .ci/run)
// makes that a failure.

var wsAddrLine = regexp.MustCompile(`msg=listening listener=mqtt-ws addr=(\S+)`)

// needBrowser returns the Chromium and node to run e2e/browser/run.mjs with.
func needBrowser(t *testing.T) (chromium, node string) {
	t.Helper()
	missing := ""
	chromium = os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		missing = "Chromium (" + chromium + ")"
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing = "node"
	}
	for _, m := range []string{"mqtt/dist/mqtt.min.js", "playwright-core/package.json"} {
		if _, err := os.Stat(filepath.Join("browser", "node_modules", m)); err != nil && missing == "" {
			missing = "e2e/browser/node_modules/" + m
		}
	}
	if missing != "" {
		msg := "no " + missing + ": run `apt-get install chromium nodejs npm && npm ci --prefix e2e/browser` for the browser test"
		if os.Getenv("TOKENMQ_REQUIRE_BROWSER") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return chromium, node
}

type browserEvent struct {
	Kind       string
	At         int // ms since the page started
	Topic      string
	Payload    string
	ReasonCode *int
	Err        string
	QoS        int
	Message    string
}

func TestBrowserRenewsOverWebSocket(t *testing.T) {
	chromium, node := needBrowser(t)
	const ttl = 6 * time.Second
	cfg := writeConfig(t, "tokens:\n  min_ttl: 1s\nbroker:\n  expire_notice: 3s\n"+
		"api:\n  rate_limits: {apply_token: 0, query_token: 0, other: 0}\n")
	p := startTokenmq(t, "--config", cfg, "--api-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0",
		"--ws-addr", "127.0.0.1:0", "--data-dir", t.TempDir())
	var ws string
	testkit.WaitFor(t, 5*time.Second, "the WebSocket listener", func() bool {
		m := wsAddrLine.FindStringSubmatch(p.logs())
		if m != nil {
			ws = m[1]
		}
		return ws != ""
	})
	admin := &api.Client{Endpoint: p.apiURL, AccessKeyID: adminID, AccessKeySecret: adminSecret}

	// The page's backend: it serves the page and MQTT.js, and issues each
	// device a token for its own topics.
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join("browser", "page.html"))
	})
	mux.HandleFunc("/mqtt.min.js", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join("browser", "node_modules", "mqtt", "dist", "mqtt.min.js"))
	})
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		ms, err := strconv.Atoi(r.URL.Query().Get("ttl"))
		if err != nil {
			http.Error(w, "ttl", http.StatusBadRequest)
			return
		}
		resp, err := admin.ApplyToken(r.Context(), api.ApplyTokenRequest{InstanceID: "mqtt-local",
			Resources: []string{"web/" + r.URL.Query().Get("id") + "/#"}, Actions: "R,W",
			ExpireTime: time.Now().Add(time.Duration(ms) * time.Millisecond)})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, resp.Token)
	})
	site := httptest.NewServer(mux)
	defer site.Close()

	type run struct {
		v     int
		renew bool
	}
	runs := []run{{5, true}, {4, true}, {5, false}, {4, false}}
	var urls []string
	for _, r := range runs {
		q := url.Values{"ws": {"ws://" + ws + "/mqtt"}, "v": {strconv.Itoa(r.v)}, "ttl": {strconv.Itoa(int(ttl / time.Millisecond))},
			"id": {fmt.Sprintf("browser-v%d-renew-%t", r.v, r.renew)}, "renew": {map[bool]string{true: "1", false: "0"}[r.renew]}}
		urls = append(urls, site.URL+"/?"+q.Encode())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{"run.mjs"}, urls...)...)
	cmd.Dir = "browser"
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node run.mjs: %v\n%s\n%s", err, stderr.String(), p.logs())
	}
	var results map[string]struct {
		Events  []browserEvent
		Console []string
	}
	if err := json.Unmarshal(stdout.Bytes(), &results); err != nil {
		t.Fatalf("run.mjs printed %q: %v", stdout.String(), err)
	}
	for i, r := range runs {
		res := results[urls[i]]
		name := fmt.Sprintf("MQTT v%d, renew %t", r.v, r.renew)
		first := func(kind string, pred func(browserEvent) bool) *browserEvent {
			for i := range res.Events {
				if e := &res.Events[i]; e.Kind == kind && (pred == nil || pred(*e)) {
					return e
				}
			}
			return nil
		}
		fail := func(format string, args ...any) {
			t.Helper()
			t.Errorf("%s: %s\nevents: %+v\nconsole: %v", name, fmt.Sprintf(format, args...), res.Events, res.Console)
		}
		if e := first("error", nil); e != nil {
			fail("error %s", e.Message)
			continue
		}
		if first("connected", nil) == nil {
			fail("never connected")
			continue
		}
		if e := first("subscribed", nil); e == nil || e.Err != "" || e.QoS != 1 {
			fail("subscribe: %+v", e)
		}
		if first("message", func(e browserEvent) bool { return e.Payload == "hello" }) == nil {
			fail("did not receive its own message")
		}
		notice := first("message", func(e browserEvent) bool { return e.Topic == "$SYS/tokenExpireNotice" })
		if notice == nil {
			fail("no $SYS/tokenExpireNotice")
			continue
		}
		var n struct {
			ExpireTime int64
			Type       string
		}
		if err := json.Unmarshal([]byte(notice.Payload), &n); err != nil || n.ExpireTime == 0 || n.Type != "RW" {
			fail("notice payload %q", notice.Payload)
		}
		closed := first("closed", nil)
		if r.renew {
			if e := first("renewed", nil); e == nil || e.Err != "" {
				fail("renewal: %+v", e)
			}
			if closed != nil && closed.At < int(ttl/time.Millisecond)+1500 {
				fail("disconnected at %d ms, before the run ended", closed.At)
			}
			if e := first("published-after-expiry", nil); e == nil || e.Err != "" {
				fail("no PUBACK past the first token's expiry: %+v", e)
			}
			if first("message", func(e browserEvent) bool { return e.Payload == "still here" }) == nil {
				fail("did not receive past the first token's expiry")
			}
			continue
		}
		// The control: no renewal, so the connection ends at expiry with
		// $SYS/tokenInvalidNotice code 2, and for MQTT 5 DISCONNECT 0xA0.
		if closed == nil {
			fail("still connected past its token's expiry")
			continue
		}
		if inv := first("message", func(e browserEvent) bool { return e.Topic == "$SYS/tokenInvalidNotice" }); inv == nil ||
			!bytes.Contains([]byte(inv.Payload), []byte(`"code":2`)) {
			fail("no tokenInvalidNotice code 2: %+v", inv)
		}
		if r.v == 5 {
			if d := first("disconnect", nil); d == nil || d.ReasonCode == nil || *d.ReasonCode != 0xA0 {
				fail("DISCONNECT %+v, want 0xA0", d)
			}
		}
		if closed.At > int((ttl+2*time.Second)/time.Millisecond) {
			fail("closed at %d ms, token expired at about %d ms", closed.At, ttl/time.Millisecond)
		}
	}
}
