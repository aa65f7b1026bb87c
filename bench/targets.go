package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/tokenmq/tokenmq/api"
	"github.com/tokenmq/tokenmq/broker"
	"github.com/tokenmq/tokenmq/config"
	"github.com/tokenmq/tokenmq/internal/heapfloor"
	"github.com/tokenmq/tokenmq/internal/mosqtest"
	"github.com/tokenmq/tokenmq/internal/natstest"
)

// Fixed credentials of the bench's own tokenmq targets.
const (
	adminID, adminSecret   = "AKBENCHADMIN01", "bench-admin-secret-0123456789"
	brokerID, brokerSecret = "AKBENCHBROKER1", "bench-broker-secret-0123456789"
	instance               = "mqtt-local"
)

// target is a broker under test, running as a child process.
type target struct {
	name string
	mqtt string      // host:port
	sub  string      // host:port subscribers use, if not mqtt (another node of a cluster)
	api  *api.Client // tokenmq: the token service
	proc *child      // the broker process (RSS is read from it)
	also []*child    // other processes of the target (split roles)
	dir  string      // scratch files
	kind string      // tokenmq, mochi, mosquitto
	halt func()      // stops proc, where something else waits for it
}

// serveChild runs a target inside this (child) process: `tokenmq-bench
// _serve KIND ...`. It prints "READY key=value ..." and serves until its
// stdin closes, which is how the parent stops it (and why an orphan dies).
func serveChild(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("_serve: which target?")
	}
	quiet := slog.New(slog.DiscardHandler)
	if dir := os.Getenv("TOKENMQ_BENCH_PROFILE_DIR"); dir != "" { // -profile-dir: a CPU profile per child
		f, err := os.Create(filepath.Join(dir, profileName(args, os.Getpid())))
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	// Both Go brokers run with tokenmq's heap floor (as `tokenmq serve`
	// does), so that the ratios compare authentication, not GC pacing.
	heapfloor.Keep(heapfloor.Default)
	switch args[0] {
	case "mochi":
		s := mqtt.New(&mqtt.Options{Logger: quiet, InlineClient: false})
		if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
			return err
		}
		if len(args) > 1 && args[1] == "bolt" { // Mochi's own bbolt storage hook
			dir, err := os.MkdirTemp("", "tokenmq-bench-mochi-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			if err := s.AddHook(new(bolt.Hook), &bolt.Options{Path: filepath.Join(dir, "mochi.db")}); err != nil {
				return err
			}
		}
		l := listeners.NewTCP(listeners.Config{ID: "tcp", Address: "127.0.0.1:0"})
		if err := s.AddListener(l); err != nil {
			return err
		}
		if err := s.Serve(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "READY mqtt=%s\n", l.Address())
		io.Copy(io.Discard, os.Stdin)
		return s.Close()
	case "net-http":
		// The floor under tokenmq's QueryToken API: net/http with the API
		// server's timeouts, reading and parsing the same signed form,
		// answering it with a fixed body, and nothing else.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: time.Minute,
			IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 1 << 20,
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if err := r.ParseForm(); err != nil || r.PostForm.Get("Action") != "QueryToken" {
					http.Error(w, "not a QueryToken form", http.StatusBadRequest)
					return
				}
				w.Header()["Content-Type"] = []string{"application/json;charset=utf-8"}
				w.Header()["Content-Length"] = []string{strconv.Itoa(len(floorAnswer))}
				w.Write(floorAnswer)
			})}
		go srv.Serve(ln)
		fmt.Fprintf(stdout, "READY api=%s\n", ln.Addr())
		io.Copy(io.Discard, os.Stdin)
		return srv.Close()
	case "tokenmq":
		role, tokenService := args[1], ""
		if len(args) > 2 {
			tokenService = args[2]
		}
		dir, err := os.MkdirTemp("", "tokenmq-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		cfg := config.Default()
		if f := os.Getenv("TOKENMQ_BENCH_CONFIG"); f != "" { // -tokenmq-config
			if cfg, err = config.Load(f, os.Getenv); err != nil {
				return err
			}
		}
		cfg.Role, cfg.DataDir, cfg.TokenService = role, dir, tokenService
		if url := os.Getenv("TOKENMQ_BENCH_NATS_URL"); url != "" { // the nats-callout target's authority
			cfg.NATS = config.NATS{URL: url, User: natstest.AuthUser, Password: os.Getenv("TOKENMQ_BENCH_NATS_AUTH"),
				IssuerSeedFile: os.Getenv("TOKENMQ_BENCH_NATS_SEED"), Account: natstest.MQTTAccount,
				SystemUser: natstest.SysUser, SystemPassword: os.Getenv("TOKENMQ_BENCH_NATS_SYS")}
		}
		if len(args) > 3 {
			cfg.Broker.Persistence = args[3]
		}
		cfg.APIAddr, cfg.MQTTAddr, cfg.WSAddr = "127.0.0.1:0", "127.0.0.1:0", ""
		cfg.API.RateLimits = config.RateLimits{}
		cfg.API.NonceCapacity = 50_000_000
		cfg.SetDefaults()
		srv, err := broker.New(broker.Options{Config: cfg, Logger: quiet,
			AccessKeys: []api.AccessKey{{ID: adminID, Secret: adminSecret, Role: api.RoleAdmin}, {ID: brokerID, Secret: brokerSecret, Role: api.RoleBroker}},
			ClientKey:  api.AccessKey{ID: brokerID, Secret: brokerSecret}})
		if err != nil {
			return err
		}
		if err := srv.Start(context.Background()); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "READY mqtt=%s api=%s\n", srv.MQTTAddr("tcp"), srv.APIAddr())
		io.Copy(io.Discard, os.Stdin)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return srv.Shutdown(ctx)
	case "nats":
		return serveNATS(stdout)
	}
	return fmt.Errorf("_serve: unknown target %q", args[0])
}

// profileName names a child's CPU profile by its kind and role, never by
// arguments that are addresses or paths ("tokenmq broker http://..." is
// cpu-tokenmq-broker-PID.prof).
func profileName(args []string, pid int) string {
	name := args[0]
	if len(args) > 1 && !strings.ContainsAny(args[1], `/\:`) {
		name += "-" + args[1]
	}
	return fmt.Sprintf("cpu-%s-%d.prof", name, pid)
}

// child is a target process. Closing stdin stops a _serve child; other
// programs get SIGTERM.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

// startChild starts `self _serve args...` and returns it with its READY values.
func startChild(args ...string) (*child, map[string]string, error) {
	return startChildEnv(nil, args...)
}

// startChildEnv is startChild with variables added to the environment.
func startChildEnv(env []string, args ...string) (*child, map[string]string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(self, append([]string{"_serve"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "READY ") {
		cmd.Process.Kill()
		return nil, nil, fmt.Errorf("%v did not start: %q %v", args, line, err)
	}
	vals := map[string]string{}
	for _, kv := range strings.Fields(line)[1:] {
		k, v, _ := strings.Cut(kv, "=")
		vals[k] = v
	}
	return &child{cmd: cmd, stdin: stdin}, vals, nil
}

// stop ends the child and waits for it.
func (c *child) stop() {
	if c == nil || c.cmd.Process == nil {
		return
	}
	if c.stdin != nil {
		c.stdin.Close()
	} else {
		c.cmd.Process.Signal(syscall.SIGTERM)
	}
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}

func apiClient(endpoint string) *api.Client {
	return &api.Client{Endpoint: endpoint, AccessKeyID: adminID, AccessKeySecret: adminSecret}
}

func startTokenmq(name, persistence string) (*target, error) {
	c, v, err := startChild("tokenmq", config.RoleAll, "", persistence)
	if err != nil {
		return nil, err
	}
	return &target{name: name, kind: "tokenmq", mqtt: v["mqtt"], proc: c,
		api: apiClient("http://" + v["api"])}, nil
}

func startTokenmqSplit() (*target, error) {
	tokens, tv, err := startChild("tokenmq", config.RoleTokens)
	if err != nil {
		return nil, err
	}
	brk, bv, err := startChild("tokenmq", config.RoleBroker, "http://"+tv["api"])
	if err != nil {
		tokens.stop()
		return nil, err
	}
	return &target{name: "tokenmq-split", kind: "tokenmq", mqtt: bv["mqtt"], proc: brk, also: []*child{tokens},
		api: apiClient("http://" + tv["api"])}, nil
}

// floorAnswer is the net-http target's QueryToken answer: tokenmq's
// answer for the bench's token (api.QueryTokenResponse, with IDs of the
// same lengths), encoded once.
var floorAnswer, _ = json.Marshal(api.QueryTokenResponse{RequestId: "0AF4C3E2-5B6D-4E7F-8A9B-0C1D2E3F4A5B", TokenStatus: true,
	TokenId: "0123456789abcdef0123456789abcdef", Actions: "R", Resources: "bench/#", ExpireTime: 1796169600000, AccessKeyId: adminID})

// startNetHTTP starts the net-http target (the QueryToken scenarios' floor).
func startNetHTTP() (*target, error) {
	c, v, err := startChild("net-http")
	if err != nil {
		return nil, err
	}
	return &target{name: "net-http", kind: "net-http", api: &api.Client{Endpoint: "http://" + v["api"]}, proc: c}, nil
}

func startMochi(name, storage string) (*target, error) {
	args := []string{"mochi"}
	if storage != "" {
		args = append(args, storage)
	}
	c, v, err := startChild(args...)
	if err != nil {
		return nil, err
	}
	return &target{name: name, kind: "mochi", mqtt: v["mqtt"], proc: c}, nil
}

// startMosquitto starts Mosquitto with a password file and an ACL file
// holding every user the scenarios use, the same rights tokenmq's tokens
// carry. It returns nil, nil when Mosquitto is not installed.
func startMosquitto(name string, idle int, persist bool) (*target, error) {
	if _, err := exec.LookPath("mosquitto"); err != nil {
		return nil, nil
	}
	if _, err := exec.LookPath("mosquitto_passwd"); err != nil {
		return nil, nil
	}
	dir, err := os.MkdirTemp("", "tokenmq-bench-mosquitto-")
	if err != nil {
		return nil, err
	}
	var pw, acl strings.Builder
	user := func(name string, write, read []string) {
		fmt.Fprintf(&pw, "%s:pw-%s\n", name, name)
		fmt.Fprintf(&acl, "user %s\n", name)
		for _, f := range write {
			fmt.Fprintf(&acl, "topic write %s\n", f)
		}
		for _, f := range read {
			fmt.Fprintf(&acl, "topic read %s\n", f)
		}
		acl.WriteString("\n")
	}
	for i := range 32 {
		user(fmt.Sprintf("cw-%d", i), []string{"bench/#"}, []string{"bench/#"})
	}
	for i := range 4 {
		user(fmt.Sprintf("pub%d-0", i), hundredResources(i), nil)
	}
	user("sub-0", nil, []string{"bench/#"})
	user("fp-0", []string{"bench/fan"}, nil)
	for i := range 50 {
		user(fmt.Sprintf("fs-%d", i), nil, []string{"bench/fan"})
	}
	for i := range idle {
		user(fmt.Sprintf("idle-%d", i), nil, []string{"bench/idle/#"})
	}
	pwFile, aclFile := filepath.Join(dir, "passwd"), filepath.Join(dir, "acl")
	if err := os.WriteFile(pwFile, []byte(pw.String()), 0o600); err != nil {
		return nil, err
	}
	if b, err := exec.Command("mosquitto_passwd", "-U", pwFile).CombinedOutput(); err != nil { // hash in place
		return nil, fmt.Errorf("mosquitto_passwd: %v: %s", err, b)
	}
	if err := os.WriteFile(aclFile, []byte(acl.String()), 0o600); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "mosquitto.conf")
	settings := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous false\npassword_file %s\nacl_file %s\nmax_queued_messages 100000\nlog_type error\n", port, pwFile, aclFile)
	if persist {
		settings += fmt.Sprintf("persistence true\npersistence_location %s/\n", dir)
	}
	if os.Geteuid() == 0 {
		settings += "user root\n" // as root, Mosquitto would switch to user mosquitto, who cannot read these 0600 files
	}
	os.WriteFile(conf, []byte(settings), 0o600)
	cmd := exec.Command("mosquitto", "-c", conf)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	t := &target{name: name, kind: "mosquitto", dir: dir, proc: &child{cmd: cmd}, mqtt: "127.0.0.1:" + strconv.Itoa(port)}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", t.mqtt); err == nil {
			c.Close()
			return t, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.stop()
	return nil, fmt.Errorf("mosquitto did not listen on %s", t.mqtt)
}

// startMosquittoPlugin starts Mosquitto with tokenmq's plugin
// (cmd/tokenmq-mosquitto, built here) in front of a token service (role
// tokens, a child), with the plain Mosquitto target's settings. It returns
// nil, nil when Mosquitto or a C compiler is missing.
func startMosquittoPlugin() (*target, error) {
	if _, err := mosqtest.Plugin(); errors.Is(err, mosqtest.ErrUnavailable) {
		return nil, nil
	}
	tokens, tv, err := startChild("tokenmq", config.RoleTokens)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "tokenmq-bench-mosquitto-plugin-")
	if err != nil {
		tokens.stop()
		return nil, err
	}
	m, err := mosqtest.Start(mosqtest.Options{Dir: dir, Quiet: true, Extra: "max_queued_messages 100000\n",
		PluginOptions: map[string]string{"token_service": "http://" + tv["api"], "instance_id": instance, "log_level": "warn"},
		Env:           append([]string{"TOKENMQ_ACCESS_KEY_ID=" + brokerID, "TOKENMQ_ACCESS_KEY_SECRET=" + brokerSecret}, pluginProfileEnv()...)})
	if err != nil {
		tokens.stop()
		os.RemoveAll(dir)
		return nil, err
	}
	return &target{name: "mosquitto-plugin", kind: "mosquitto-plugin", mqtt: m.Addr, proc: &child{cmd: m.Cmd()}, halt: m.Stop,
		also: []*child{tokens}, dir: dir, api: apiClient("http://" + tv["api"])}, nil
}

// pluginProfileEnv asks the plugin for a CPU profile of its Go side under
// -profile-dir (Mosquitto's own C code shows as external code).
func pluginProfileEnv() []string {
	dir := os.Getenv("TOKENMQ_BENCH_PROFILE_DIR")
	if dir == "" {
		return nil
	}
	return []string{"TOKENMQ_PLUGIN_CPU_PROFILE=" + filepath.Join(dir, fmt.Sprintf("mosquitto-plugin-%d.pprof", time.Now().UnixNano()))}
}

// freePort finds a free loopback port (Mosquitto cannot listen on port 0 and report it).
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// subAddr is where the target's subscribers connect.
func (t *target) subAddr() string {
	if t.sub != "" {
		return t.sub
	}
	return t.mqtt
}

func (t *target) stop() {
	if t.halt != nil {
		t.halt()
	} else {
		t.proc.stop()
	}
	for _, c := range t.also {
		c.stop()
	}
	if t.dir != "" {
		os.RemoveAll(t.dir)
	}
}

// cpuSeconds is the user plus system CPU time the target's processes (both
// of split roles) have used so far, from /proc; 0 where it cannot be read.
func (t *target) cpuSeconds() float64 {
	var ticks int64
	for _, c := range append([]*child{t.proc}, t.also...) {
		if c == nil || c.cmd.Process == nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
		n, ok := statTicks(b)
		if err != nil || !ok {
			return 0
		}
		ticks += n
	}
	return float64(ticks) / clockTicks
}

// statTicks reads utime + stime from a /proc/<pid>/stat line, "pid (comm)
// state ppid ...": comm may hold spaces and parentheses, so fields are
// counted from its last ')'.
func statTicks(b []byte) (int64, bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	return utime + stime, err1 == nil && err2 == nil
}

// machineTicks reads, from /proc/stat's "cpu" line, the ticks the machine's
// CPUs spent in all states and those stolen by the hypervisor (time this
// virtual machine was ready to run and did not). ok is false where there
// is no /proc/stat.
func machineTicks() (steal, total int64, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	return cpuLineTicks(string(line))
}

// cpuLineTicks parses /proc/stat's first line for machineTicks.
func cpuLineTicks(line string) (steal, total int64, ok bool) {
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, false
	}
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, 0, false
		}
		if i < 8 { // user nice system idle iowait irq softirq steal (guest time is within user)
			total += n
		}
		if i == 7 {
			steal = n
		}
	}
	return steal, total, true
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on Linux
// for every architecture Go supports.
const clockTicks = 100

// rssKiB reads the resident set size of the target's broker process.
func (t *target) rssKiB() int64 { return t.statusKiB("VmRSS:") }
