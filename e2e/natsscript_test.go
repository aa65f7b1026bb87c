package e2e

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/api"
	"github.com/tokenmq/tokenmq/internal/natstest"
)

// natsServerBinary finds a nats-server for scripts/nats-cluster.sh: the
// script would go-install one, which a test leaves to .ci/run.
func natsServerBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("NATS_SERVER"); p != "" {
		return p
	}
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p
	}
	for _, dir := range []string{os.Getenv("GOBIN"), filepath.Join(os.Getenv("HOME"), "go", "bin")} {
		if p := filepath.Join(dir, "nats-server"); dir != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	if os.Getenv("TOKENMQ_REQUIRE_NATS_SERVER") != "" {
		t.Fatal("TOKENMQ_REQUIRE_NATS_SERVER is set and no nats-server was found")
	}
	t.Skip("SKIP-NEEDS-NATS-SERVER: no nats-server on PATH; install it with `go install github.com/nats-io/nats-server/v2@v2.15.2` (.ci/run does)")
	return ""
}

// freeBase picks a port base below 32768 whose 31 ports the script uses
// are free now.
func freeBase(t *testing.T) int {
	t.Helper()
	for range 200 {
		base := 20000 + rand.IntN(12000)
		ok := true
		for p := base - 1; p <= base+31 && ok; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				continue
			}
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
}

// scripts/nats-cluster.sh runs configs/nats/ as local processes: three
// nats-server nodes and tokenmq as their authority. MQTT clients on two
// nodes exchange messages with tokens from the printed API, a forged token
// is refused, and SIGTERM stops every process.
func TestNATSClusterScript(t *testing.T) {
	natsServer := natsServerBinary(t)
	base := freeBase(t)
	cmd := exec.Command("bash", "../scripts/nats-cluster.sh")
	cmd.Env = append(os.Environ(), "NATS_SERVER="+natsServer, fmt.Sprintf("NATS_PORT_BASE=%d", base), "TOKENMQ_ACCESS_KEY_SECRET="+adminSecret)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	})
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var printed []string
	deadline := time.After(3 * time.Minute)
wait:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the script ended before it was up:\n%s\n%s", strings.Join(printed, "\n"), stderr.String())
			}
			printed = append(printed, l)
			if strings.HasPrefix(l, "Ctrl-C stops it") {
				break wait
			}
		case <-deadline:
			t.Fatalf("the script was not up within 3 minutes:\n%s\n%s", strings.Join(printed, "\n"), stderr.String())
		}
	}
	text := strings.Join(printed, "\n")
	mqttAddrs := regexp.MustCompile(`127\.0\.0\.1:\d+`).FindAllString(strings.Split(text, "\n")[1], -1)
	apiURL := regexp.MustCompile(`http://127\.0\.0\.1:\d+`).FindString(text)
	if len(mqttAddrs) != 3 || apiURL == "" || !strings.Contains(text, "TOKENMQ_ACCESS_KEY_ID=admin") {
		t.Fatalf("the script's banner:\n%s", text)
	}
	admin := &api.Client{Endpoint: apiURL, AccessKeyID: "admin", AccessKeySecret: adminSecret}
	tok := applyWith(t, admin, "demo/#", "R,W", time.Hour)
	sub := natstest.DialUntil(t, mqttAddrs[0], "sub", tok, true) // the first MQTT client of a fresh cluster may find JetStream still settling
	sub.Subscribe(t, "demo/+", 1)
	pub := natstest.DialUntil(t, mqttAddrs[2], "pub", tok, true)
	pub.Publish(t, "demo/x", 1, false, "through the script's cluster")
	natstest.WaitPayloads(t, sub, "through the script's cluster")
	if _, rc := natstest.Dial(t, mqttAddrs[1], "forger", "device", tok[:len(tok)-2]+"zz", true); rc != 5 {
		t.Fatalf("forged token: return code %d", rc)
	}

	sub.C.Disconnect(50)
	pub.C.Disconnect(50)
	cmd.Process.Signal(syscall.SIGTERM) // the script's own trap stops what it started
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the script did not stop within 30s of SIGTERM")
	}
	for _, a := range mqttAddrs {
		if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after the script stopped", a)
		}
	}
}
