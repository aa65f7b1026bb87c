// Package mosqtest runs a real Mosquitto with tokenmq's plugin
// (cmd/tokenmq-mosquitto) for tests and benchmarks: it builds the plugin
// once per process and starts mosquitto on a loopback port.
package mosqtest

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrUnavailable says Mosquitto or the means to build the plugin (cgo, a
// C compiler) are missing here; Why has the details.
var ErrUnavailable = errors.New("mosquitto plugin tests need mosquitto and a C compiler (apt-get install mosquitto gcc)")

var (
	buildOnce sync.Once
	built     string
	buildErr  error
)

// moduleRoot is the repository root (this file is internal/mosqtest/mosqtest.go).
func moduleRoot() string {
	_, f, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(f)))
}

// Plugin builds cmd/tokenmq-mosquitto as a shared object (once per
// process) and returns its path.
func Plugin() (string, error) {
	buildOnce.Do(func() {
		if _, err := exec.LookPath("mosquitto"); err != nil {
			buildErr = fmt.Errorf("%w: no mosquitto on PATH", ErrUnavailable)
			return
		}
		// One file per user, rebuilt by every process (Go's build cache makes
		// that quick) and renamed into place, so that concurrent test
		// binaries neither share a half-written file nor leave copies behind.
		dir := filepath.Join(os.TempDir(), fmt.Sprintf("tokenmq-mosquitto-plugin-%d", os.Getuid()))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			buildErr = err
			return
		}
		out := filepath.Join(dir, "tokenmq_mosquitto.so")
		tmp, err := os.CreateTemp(dir, "build-*.so")
		if err != nil {
			buildErr = err
			return
		}
		tmp.Close()
		defer os.Remove(tmp.Name())
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", tmp.Name(), "./cmd/tokenmq-mosquitto")
		cmd.Dir = moduleRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		if b, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("%w: go build -buildmode=c-shared: %v\n%s", ErrUnavailable, err, b)
			return
		}
		os.Remove(strings.TrimSuffix(tmp.Name(), ".so") + ".h") // the C header go build writes beside it
		if err := os.Rename(tmp.Name(), out); err != nil {
			buildErr = err
			return
		}
		built = out
	})
	return built, buildErr
}

// Options start one Mosquitto.
type Options struct {
	// PluginOptions are plugin_opt_<key> values.
	PluginOptions map[string]string
	// Env is added to mosquitto's environment.
	Env []string
	// Prelude comes first in mosquitto.conf (per_listener_settings must),
	// Extra last.
	Prelude, Extra string
	// Dir holds mosquitto.conf (and persistence, if Extra turns it on);
	// default a new temporary directory.
	Dir string
	// Quiet logs errors only (a benchmark's setting); by default Mosquitto
	// logs every connection, and the plugin's lines.
	Quiet bool
}

// Broker is a running mosquitto.
type Broker struct {
	Addr string // host:port of its MQTT listener
	Dir  string
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  bytes.Buffer
	done chan struct{}
}

type logWriter struct{ b *Broker }

func (w logWriter) Write(p []byte) (int, error) {
	w.b.mu.Lock()
	defer w.b.mu.Unlock()
	return w.b.log.Write(p)
}

// Logs returns what mosquitto has logged (the plugin's lines are prefixed
// "tokenmq:").
func (b *Broker) Logs() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.log.String()
}

// Start runs mosquitto with the plugin on a free loopback port below 32768
// (Mosquitto cannot listen on port 0 and say which it got).
func Start(o Options) (*Broker, error) {
	so, err := Plugin()
	if err != nil {
		return nil, err
	}
	dir := o.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "tokenmq-mosquitto-"); err != nil {
			return nil, err
		}
	}
	var lastErr error
	for range 5 {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		var conf strings.Builder
		conf.WriteString(o.Prelude)
		fmt.Fprintf(&conf, "listener %d 127.0.0.1\nplugin %s\n", port, so)
		for k, v := range o.PluginOptions {
			fmt.Fprintf(&conf, "plugin_opt_%s %s\n", k, v)
		}
		if o.Quiet {
			conf.WriteString("log_dest stderr\nlog_type error\nconnection_messages false\n")
		} else {
			conf.WriteString("log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\nconnection_messages true\n")
		}
		if os.Geteuid() == 0 {
			conf.WriteString("user root\n") // as root, Mosquitto would switch to user mosquitto, who cannot read 0600 files here
		}
		conf.WriteString(o.Extra)
		path := filepath.Join(dir, "mosquitto.conf")
		if err := os.WriteFile(path, []byte(conf.String()), 0o600); err != nil {
			return nil, err
		}
		b := &Broker{Addr: fmt.Sprintf("127.0.0.1:%d", port), Dir: dir, done: make(chan struct{})}
		b.cmd = exec.Command("mosquitto", "-c", path)
		b.cmd.Env = append(os.Environ(), o.Env...)
		b.cmd.Stdout, b.cmd.Stderr = logWriter{b}, logWriter{b}
		if err := b.cmd.Start(); err != nil {
			return nil, err
		}
		go func() { b.cmd.Wait(); close(b.done) }()
		if err := b.waitListening(10 * time.Second); err != nil {
			b.Kill()
			lastErr = err
			if strings.Contains(b.Logs(), "Address already in use") {
				continue
			}
			return nil, err
		}
		return b, nil
	}
	return nil, lastErr
}

func (b *Broker) waitListening(d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		select {
		case <-b.done:
			return fmt.Errorf("mosquitto exited: %s", b.Logs())
		default:
		}
		if c, err := net.DialTimeout("tcp", b.Addr, 100*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("mosquitto did not listen on %s: %s", b.Addr, b.Logs())
}

// Stop ends mosquitto with SIGTERM and waits for it.
func (b *Broker) Stop() {
	if b.cmd.Process == nil {
		return
	}
	b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
		b.Kill()
	}
}

// Kill ends mosquitto with SIGKILL and waits for it.
func (b *Broker) Kill() {
	if b.cmd.Process != nil {
		b.cmd.Process.Kill()
		<-b.done
	}
}

// Exited is closed when mosquitto has exited.
func (b *Broker) Exited() <-chan struct{} { return b.done }

// Cmd is mosquitto's process (Stop and Kill wait for it; nothing else may).
func (b *Broker) Cmd() *exec.Cmd { return b.cmd }

// PID is mosquitto's process ID.
func (b *Broker) PID() int { return b.cmd.Process.Pid }

// FreePort picks a loopback port in [20000, 32767] that is free now.
func FreePort() (int, error) {
	for range 1000 {
		r, _ := rand.Int(rand.Reader, big.NewInt(32767-20000))
		p := 20000 + int(r.Int64())
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		return p, nil
	}
	return 0, errors.New("no free port below 32768")
}
