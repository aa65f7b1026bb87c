package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/config"
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
