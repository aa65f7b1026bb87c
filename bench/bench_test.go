package bench

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
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
	profiles := t.TempDir()
	code := Main(context.Background(), []string{"-rounds", "1", "-duration", "200ms", "-targets", "tokenmq,tokenmq-split,mochi-allow-all",
		"-idle-clients", "50", "-max-clients", "60", "-churn", "300ms", "-revoke-clients", "20", "-profile-dir", profiles}, &out, &log)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), log.String())
	}
	for _, sc := range scenarios() {
		if !strings.Contains(out.String(), sc.name) {
			t.Errorf("no row for %s in:\n%s", sc.name, out.String())
		}
	}
	for _, want := range []string{"publish-qos0, tokenmq: ", "publish-qos1, tokenmq-split: ", "fanout-1x50, mochi-allow-all: "} {
		_, rest, found := strings.Cut(out.String(), want)
		line, _, _ := strings.Cut(rest, "\n")
		if !found || !strings.Contains(line, "received over 1 rounds") {
			t.Errorf("no delivery summary %q… in:\n%s", want, out.String())
		}
	}
	// The storm's note: every client in, and on tokenmq one validation per
	// token (the cache is cold, every token new).
	for _, want := range []string{"connect-storm, tokenmq: 60 clients in", "connect-storm, tokenmq-split: 60 clients in"} {
		_, rest, found := strings.Cut(out.String(), want)
		line, _, _ := strings.Cut(rest, "\n")
		if !found || !strings.HasSuffix(line, ", 60 token validations") {
			t.Errorf("no storm summary %q… with 60 token validations in:\n%s", want, out.String())
		}
	}
	if !strings.Contains(out.String(), "server CPU per operation") {
		t.Errorf("no CPU-per-operation table in:\n%s", out.String())
	}
	if strings.Contains(out.String(), "failed") || strings.Contains(log.String(), "preparing") {
		t.Fatalf("failures in a smoke run:\n%s\n%s", out.String(), log.String())
	}
	// -profile-dir: a non-empty CPU profile from every process of every target.
	for _, kind := range []string{"tokenmq-all", "tokenmq-tokens", "tokenmq-broker", "mochi"} {
		files, _ := filepath.Glob(filepath.Join(profiles, "cpu-"+kind+"-*.prof"))
		if len(files) == 0 {
			entries, _ := os.ReadDir(profiles)
			t.Errorf("no CPU profile of %s; the directory holds %v", kind, entries)
			continue
		}
		for _, f := range files {
			if st, err := os.Stat(f); err != nil || st.Size() == 0 {
				t.Errorf("CPU profile %s is empty (%v)", f, err)
			}
		}
	}
}

func TestStatTicks(t *testing.T) {
	// A real line's shape, with a comm holding a space and a ')'.
	line := []byte("4242 (tokenmq b) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 37 0 0 20 0 9 0 100 0 0\n")
	if n, ok := statTicks(line); !ok || n != 287 {
		t.Fatalf("statTicks = %d, %v; want 287 (250 user + 37 system)", n, ok)
	}
	for _, bad := range []string{"", "4242 tokenmq S 1", "4242 (x) S 1 2 3"} {
		if _, ok := statTicks([]byte(bad)); ok {
			t.Errorf("statTicks(%q) accepted", bad)
		}
	}
	self, ok := statTicks(must(os.ReadFile("/proc/self/stat")))
	if !ok || self < 0 {
		t.Fatalf("this process's own stat line: %d, %v", self, ok)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// The ratio column pairs rounds: a slow spell that hits every target in one
// round moves each target's median but not the ratio.
func TestSummarizePairsRounds(t *testing.T) {
	rounds := []map[string]float64{
		{"tokenmq": 100, "mochi-allow-all": 100, "tokenmq-split": 90},
		{"tokenmq": 50, "mochi-allow-all": 52, "tokenmq-split": 45},
		{"tokenmq": 95, "mochi-allow-all": 100},
		{"tokenmq": 10}, // Mochi failed this round: no pair
	}
	med, ratio := summarize(rounds)
	if med["tokenmq"] != 95 || med["mochi-allow-all"] != 100 || med["tokenmq-split"] != 90 {
		t.Errorf("medians %v", med)
	}
	if got, want := ratio["tokenmq/mochi"], 50.0/52; got != want {
		t.Errorf("tokenmq ratio %v, want the median paired ratio %v (1, 0.96, 0.95)", got, want)
	}
	if got, want := ratio["split/mochi"], 0.9; got != want { // pairs 0.9 and 0.865: the upper median
		t.Errorf("split ratio %v, want %v", got, want)
	}
	if len(ratio) != 2 {
		t.Errorf("ratios %v, want only the two pairs the rounds have", ratio)
	}
}

// Delivery figures are summed over rounds, with the worst round kept: the
// last round alone (what the notes hold) can hide a bad one, or show one.
func TestDeliverySumsRounds(t *testing.T) {
	var d delivery
	for _, o := range []outcome{{expected: 1000, delivered: 1000}, {expected: 1000, delivered: 900}, {expected: 2000, delivered: 1990}} {
		d.add(o)
	}
	if d.Expected != 4000 || d.Delivered != 3890 || d.Rounds != 3 || d.Worst != 90 {
		t.Fatalf("got %+v", d)
	}
	if want := "3890 of 4000 messages received over 3 rounds (97.2%; worst round 90.0%)"; d.String() != want {
		t.Fatalf("String() = %q, want %q", d.String(), want)
	}
}

// The CONNACK latencies in the summary are medians over the rounds, not
// the last round's.
func TestLatencyMediansOfRounds(t *testing.T) {
	l := latency{
		P50: []time.Duration{35 * time.Millisecond, 31 * time.Millisecond, 33 * time.Millisecond},
		P99: []time.Duration{80 * time.Millisecond, 120 * time.Millisecond, 90 * time.Millisecond},
	}
	if want := "CONNACK p50 33.0 ms, p99 90.0 ms (medians of 3 rounds)"; l.String() != want {
		t.Fatalf("String() = %q, want %q", l.String(), want)
	}
	if l.P99[0] != 80*time.Millisecond {
		t.Fatal("String sorted the rounds in place")
	}
}

// The steal share comes from /proc/stat's eighth column, over the first
// eight (guest time is already within user time).
func TestCPULineTicks(t *testing.T) {
	steal, total, ok := cpuLineTicks("cpu  601096 329 48337 2654646 7093 0 10478 10405 0 0")
	if !ok || steal != 10405 || total != 601096+329+48337+2654646+7093+10478+10405 {
		t.Errorf("got steal %d total %d ok %v", steal, total, ok)
	}
	for _, bad := range []string{"", "cpu0 1 2 3 4 5 6 7 8", "cpu 1 2 3", "cpu 1 2 3 4 5 6 7 x"} {
		if _, _, ok := cpuLineTicks(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
	if _, _, ok := machineTicks(); !ok && runtime.GOOS == "linux" {
		t.Error("this machine's /proc/stat did not parse")
	}
}
