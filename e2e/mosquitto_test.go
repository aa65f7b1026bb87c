package e2e

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// needMosquittoClients returns the path of a mosquitto client, skipping the
// test where it is not installed; .ci/run installs it and sets
// TOKENMQ_REQUIRE_MOSQUITTO=1 so that CI never skips.
func needMosquittoClients(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("TOKENMQ_REQUIRE_MOSQUITTO") != "" {
			t.Fatalf("%s is required here but not installed", name)
		}
		t.Skipf("%s not installed (apt-get install mosquitto-clients); skipping the interop test", name)
	}
	return p
}

// The README's quick start, with Eclipse Mosquitto's command-line clients
// (a C client library) in both credential forms and both protocol versions.
func TestMosquittoClientsInterop(t *testing.T) {
	pub := needMosquittoClients(t, "mosquitto_pub")
	sub := needMosquittoClients(t, "mosquitto_sub")
	e := startEnv(t)
	host, port, _ := strings.Cut(e.mqtt, ":")
	tok := e.apply("devices/+/telemetry", "R,W", time.Hour)

	// Retained publishes first, so the subscriber gets them whenever its
	// SUBSCRIBE lands: no waiting on timing.
	for _, args := range [][]string{
		{"-V", "mqttv5", "-u", "device-1", "-P", tok, "-t", "devices/pump-1/telemetry", "-m", `{"bar":2.1}`},
		{"-V", "mqttv311", "-u", "Token|" + adminID + "|mqtt-local", "-P", "RW|" + tok, "-t", "devices/pump-2/telemetry", "-m", "hi"},
	} {
		cmd := exec.Command(pub, append([]string{"-h", host, "-p", port, "-q", "1", "-r"}, args...)...)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_pub %v: %v: %s", args, err, b)
		}
	}
	b, err := exec.Command(sub, "-h", host, "-p", port, "-V", "mqttv5", "-u", "device-1", "-P", tok,
		"-t", "devices/+/telemetry", "-v", "-C", "2", "-W", "20").Output()
	if err != nil {
		t.Fatalf("mosquitto_sub: %v (got %q)", err, b)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	slices.Sort(lines)
	if want := []string{`devices/pump-1/telemetry {"bar":2.1}`, "devices/pump-2/telemetry hi"}; !slices.Equal(lines, want) {
		t.Fatalf("mosquitto_sub printed %q, want %q", lines, want)
	}
	// A bad token: mosquitto_pub reports the refusal and exits non-zero.
	b, err = exec.Command(pub, "-h", host, "-p", port, "-u", "x", "-P", "bogus", "-t", "devices/x/telemetry", "-m", "no").CombinedOutput()
	if err == nil || !strings.Contains(string(b), "bad user name or password") {
		t.Fatalf("mosquitto_pub with a bad token: %v: %s", err, b)
	}
}
