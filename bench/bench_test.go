package bench

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
)

// TestMain lets the test binary serve as its own child targets, as the
// tokenmq-bench binary does (`_serve ...`).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "_serve" {
		if err := serveChild(os.Args[2:], os.Stdout); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// A tiny run of every scenario on tokenmq and allow-all Mochi: the tool
// works end to end and every client gets in. Its numbers mean nothing.
func TestBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts brokers")
	}
	var out, log bytes.Buffer
	code := Main(context.Background(), []string{"-rounds", "1", "-duration", "200ms", "-targets", "tokenmq,tokenmq-split,mochi-allow-all",
		"-idle-clients", "50", "-revoke-clients", "20"}, &out, &log)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), log.String())
	}
	for _, sc := range scenarios() {
		if !strings.Contains(out.String(), sc.name) {
			t.Errorf("no row for %s in:\n%s", sc.name, out.String())
		}
	}
	if strings.Contains(out.String(), "failed") || strings.Contains(log.String(), "preparing") {
		t.Fatalf("failures in a smoke run:\n%s\n%s", out.String(), log.String())
	}
}
