package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/internal/testkit"
)

// binary is the tokenmq binary built by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tokenmq-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "tokenmq")
	build := exec.Command("go", "build", "-o", binary, "github.com/tokenmq/tokenmq/cmd/tokenmq")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building tokenmq:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	adminID     = "AKE2EADMIN0001"
	adminSecret = "e2e-admin-secret-0123456789"
)

// proc is a running tokenmq process.
type proc struct {
	t       *testing.T
	cmd     *exec.Cmd
	apiURL  string
	mqtt    string // host:port of MQTT over TCP, if it runs a broker
	mu      sync.Mutex
	log     strings.Builder
	exited  chan struct{}
	exitErr error
}

var (
	apiAddrLine  = regexp.MustCompile(`msg=listening listener=api addr=(\S+)|"msg":"listening","listener":"api","addr":"([^"]+)"`)
	mqttAddrLine = regexp.MustCompile(`msg=listening listener=mqtt-tcp addr=(\S+)|"msg":"listening","listener":"mqtt-tcp","addr":"([^"]+)"`)
)

// startTokenmq starts `tokenmq serve args...` with the e2e admin key and
// waits until /readyz answers 200.
func startTokenmq(t *testing.T, args ...string) *proc {
	t.Helper()
	return startTokenmqAs(t, adminID, adminSecret, args...)
}

// startTokenmqAs starts `tokenmq serve args...` with the given key in the
// environment and waits until /readyz answers 200.
func startTokenmqAs(t *testing.T, keyID, keySecret string, args ...string) *proc {
	t.Helper()
	return startTokenmqUnder(t, nil, keyID, keySecret, args...)
}

// startTokenmqUnder starts `prefix... tokenmq serve args...` (a prefix such
// as prlimit's) and waits until /readyz answers 200.
func startTokenmqUnder(t *testing.T, prefix []string, keyID, keySecret string, args ...string) *proc {
	t.Helper()
	argv := append(append(append([]string(nil), prefix...), binary, "serve"), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "TOKENMQ_ACCESS_KEY_ID="+keyID, "TOKENMQ_ACCESS_KEY_SECRET="+keySecret)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, exited: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.log.WriteString(line + "\n")
			p.mu.Unlock()
			if m := mqttAddrLine.FindStringSubmatch(line); m != nil {
				p.mu.Lock()
				p.mqtt = m[1] + m[2]
				p.mu.Unlock()
			}
			if m := apiAddrLine.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1] + m[2]:
				default:
				}
			}
		}
	}()
	go func() { p.exitErr = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() { p.kill() })
	select {
	case a := <-addr:
		p.apiURL = "http://" + a
	case <-p.exited:
		t.Fatalf("tokenmq exited before listening (%v):\n%s", p.exitErr, p.logs())
	case <-time.After(20 * time.Second):
		t.Fatalf("tokenmq did not listen within 20s:\n%s", p.logs())
	}
	testkit.WaitFor(t, 10*time.Second, "readyz 200", func() bool {
		resp, err := http.Get(p.apiURL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return p
}

func (p *proc) logs() string { p.mu.Lock(); defer p.mu.Unlock(); return p.log.String() }

func (p *proc) mqttAddr() string { p.mu.Lock(); defer p.mu.Unlock(); return p.mqtt }

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// stop sends SIGTERM and waits for a graceful exit.
func (p *proc) stop(timeout time.Duration) error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.exitErr
	case <-time.After(timeout):
		p.kill()
		return fmt.Errorf("no exit within %v after SIGTERM", timeout)
	}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// writeConfig writes a YAML config file for a test and returns its path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tokenmq.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
