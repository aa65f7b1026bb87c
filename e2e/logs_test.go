package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/api"
	"github.com/tokenmq/tokenmq/config"
	"github.com/tokenmq/tokenmq/internal/testkit"
)

// SPEC §5: logs never contain a token or a secret. A whole session at debug
// level — good and bad CONNECTs, a renewal, an invalid renewal, a
// revocation — and the log is scanned for every token and the key secret.
func TestLogsNeverContainTokensOrSecrets(t *testing.T) {
	e := startEnv(t, func(c *config.Config) { c.LogLevel = "debug" })
	first := e.apply("dev/#", "R,W", time.Hour)
	second := e.apply("dev/#", "R,W", time.Hour)
	revoked := e.apply("dev/#", "R,W", time.Hour)
	forged := first[:30] + "AAAA" + first[34:]
	secrets := []string{first, second, revoked, forged, adminSecret}

	dev := mustConnect5(t, e.mqtt, "dev", "Token|"+adminID+"|mqtt-local", "RW|"+first)
	dev.publish("$SYS/uploadToken", 1, false, fmt.Sprintf(`{"token":%q,"type":"RW"}`, second))
	dev.publish("dev/x", 1, false, "hello")
	connect5(t, e.mqtt, "bad", "d", forged)
	connect3(t, e.mqtt, "bad3", "Token|"+adminID+"|mqtt-local", "R|"+forged)
	victim := mustConnect5(t, e.mqtt, "victim", "d", revoked)
	e.revoke(revoked)
	victim.waitClosed(2 * time.Second)
	other := mustConnect5(t, e.mqtt, "other", "d", first)
	other.publish("$SYS/uploadToken", 1, false, fmt.Sprintf(`{"token":%q,"type":"RW"}`, forged))
	other.waitClosed(2 * time.Second)

	logs := e.logs.String()
	if !strings.Contains(logs, "connect refused") || !strings.Contains(logs, "token revoked") {
		t.Fatalf("the session was not logged at debug level:\n%s", logs)
	}
	for _, s := range secrets {
		for _, piece := range []string{s, s[:24]} { // whole, or a recognisable prefix
			if strings.Contains(logs, piece) {
				t.Fatalf("the log contains a token or secret (%q…)", piece[:8])
			}
		}
	}
}

// Issue 7: one structured line per connect decision — client id, remote,
// token id and reason — in JSON with --log-format json.
func TestConnectDecisionLogLinesJSON(t *testing.T) {
	p := startTokenmq(t, "--api-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--ws-addr", "",
		"--data-dir", t.TempDir(), "--log-format", "json")
	testkit.WaitFor(t, 5*time.Second, "the MQTT address", func() bool { return p.mqttAddr() != "" })
	admin := &api.Client{Endpoint: p.apiURL, AccessKeyID: adminID, AccessKeySecret: adminSecret}
	tok := applyWith(t, admin, "dev/#", "R", time.Hour)
	q, _ := admin.QueryToken(context.Background(), "mqtt-local", tok)
	mustConnect5(t, p.mqttAddr(), "good-client", "d", tok)
	connect5(t, p.mqttAddr(), "bad-client", "Token|"+adminID+"|mqtt-local", "W|"+tok) // R token given as W
	var accepted, refused map[string]any
	testkit.WaitFor(t, 5*time.Second, "both decision lines", func() bool {
		for _, line := range strings.Split(p.logs(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) != nil {
				continue
			}
			switch m["msg"] {
			case "connect accepted":
				accepted = m
			case "connect refused":
				refused = m
			}
		}
		return accepted != nil && refused != nil
	})
	if accepted["client"] != "good-client" || accepted["token_id"] != q.TokenId || accepted["remote"] == nil {
		t.Fatalf("accepted line %v", accepted)
	}
	if refused["client"] != "bad-client" || refused["token_id"] != q.TokenId || refused["reason"] != "type_not_covered" || refused["code"] != "0x87" {
		t.Fatalf("refused line %v", refused)
	}
}
