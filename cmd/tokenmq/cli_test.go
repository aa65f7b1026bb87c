package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/api"
	"github.com/tokenmq/tokenmq/broker"
	"github.com/tokenmq/tokenmq/config"
)

const testKeyID, testKeySecret = "AKCLITEST00001", "cli-test-secret-0123456789"

// startServer runs a token service on 127.0.0.1:0 and returns its URL.
func startServer(t *testing.T) string {
	t.Helper()
	srv := startServerIn(t, t.TempDir())
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return "http://" + srv.APIAddr().String()
}

// startServerIn starts a token service with the test key on a data dir.
func startServerIn(t *testing.T, dataDir string) *broker.Server {
	t.Helper()
	cfg := config.Default()
	cfg.Role, cfg.DataDir, cfg.APIAddr = config.RoleTokens, dataDir, "127.0.0.1:0"
	cfg.SetDefaults()
	srv, err := broker.New(broker.Options{Config: cfg, Logger: slog.New(slog.DiscardHandler),
		AccessKeys: []api.AccessKey{{ID: testKeyID, Secret: testKeySecret, Role: api.RoleAdmin}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return srv
}

// cli runs the tokenmq command line in-process.
func cli(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestTokenCommands(t *testing.T) {
	t.Setenv(envKeyID, testKeyID)
	t.Setenv(envKeySecret, testKeySecret)
	url := startServer(t)

	code, tok, stderr := cli(t, "token", "apply", "--endpoint", url, "--resources", "devices/+/up,cmd/#", "--actions", "R,W", "--ttl", "2h", "--name", "pump-1")
	tok = strings.TrimSpace(tok)
	if code != 0 || !regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`).MatchString(tok) {
		t.Fatalf("apply: exit %d, stdout %q, stderr %q", code, tok, stderr)
	}

	// Flags after the argument work too.
	code, out, stderr := cli(t, "token", "query", tok, "--endpoint", url, "--json")
	var q api.QueryTokenResponse
	if code != 0 || json.Unmarshal([]byte(out), &q) != nil || !q.TokenStatus || q.Resources != "cmd/#,devices/+/up" {
		t.Fatalf("query --json: exit %d, %q, %q", code, out, stderr)
	}
	code, out, _ = cli(t, "token", "query", "--endpoint", url, tok)
	if code != 0 || !strings.Contains(out, "status:     valid") || !strings.Contains(out, "cmd/#, devices/+/up") {
		t.Fatalf("query: exit %d, %q", code, out)
	}

	code, out, _ = cli(t, "token", "get", "--endpoint", url, "--display", q.TokenId)
	if code != 0 || !strings.Contains(out, "name:       pump-1") || !strings.Contains(out, tok) {
		t.Fatalf("get --display: exit %d, %q", code, out)
	}
	code, out, _ = cli(t, "token", "get", "--endpoint", url, q.TokenId)
	if code != 0 || strings.Contains(out, tok) {
		t.Fatalf("get without --display shows the token or fails: exit %d, %q", code, out)
	}

	code, out, _ = cli(t, "token", "list", "--endpoint", url)
	if code != 0 || !strings.Contains(out, q.TokenId) || !strings.Contains(out, "valid") || strings.Contains(out, tok) {
		t.Fatalf("list: exit %d, %q", code, out)
	}

	if code, out, _ = cli(t, "token", "revoke", "--endpoint", url, tok); code != 0 || out != "revoked\n" {
		t.Fatalf("revoke: exit %d, %q", code, out)
	}
	if code, out, _ = cli(t, "token", "query", "--endpoint", url, tok); code != 1 || !strings.HasPrefix(out, "invalid") {
		t.Fatalf("query after revoke: exit %d, %q; want exit 1, invalid", code, out)
	}
	code, out, _ = cli(t, "token", "list", "--endpoint", url, "--all")
	if code != 0 || !strings.Contains(out, "revoked") {
		t.Fatalf("list after revoke: exit %d, %q", code, out)
	}
}

func TestTokenCommandErrors(t *testing.T) {
	t.Setenv(envKeyID, testKeyID)
	t.Setenv(envKeySecret, testKeySecret)
	url := startServer(t)
	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		inStderr string
	}{
		{"api error is explained", []string{"token", "apply", "--endpoint", url, "--resources", "a/#/b", "--actions", "R"}, 1, `InvalidParameter.Resources: Resources topic filter 1 ("a/#/b") uses '#'`},
		{"ttl below the minimum", []string{"token", "apply", "--endpoint", url, "--resources", "a", "--actions", "R", "--ttl", "30s"}, 1, "InvalidParameter.ExpireTime"},
		{"missing flags", []string{"token", "apply", "--endpoint", url}, 1, "--resources and --actions are required"},
		{"unknown subcommand", []string{"token", "renew"}, 2, `unknown command "renew"`},
		{"missing argument", []string{"token", "query", "--endpoint", url}, 2, "want 1 argument(s), got 0"},
		{"unknown flag", []string{"token", "list", "--pagesize", "3"}, 2, "flag provided but not defined"},
		{"unreachable service", []string{"token", "query", "--endpoint", "http://127.0.0.1:1", "x"}, 1, "cannot reach the token service"},
		{"unknown token id", []string{"token", "get", "--endpoint", url, strings.Repeat("a", 32)}, 1, "RetCode 8001"},
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := cli(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.inStderr) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, stderr, tc.code, tc.inStderr)
			}
		})
	}
}

func TestTokenCommandsNeedCredentials(t *testing.T) {
	t.Setenv(envKeyID, "")
	t.Setenv(envKeySecret, "")
	code, _, stderr := cli(t, "token", "list", "--key-file", filepath.Join(t.TempDir(), "none.json"))
	if code != 2 || !strings.Contains(stderr, "no credentials: set TOKENMQ_ACCESS_KEY_ID and TOKENMQ_ACCESS_KEY_SECRET") {
		t.Fatalf("exit %d, %q", code, stderr)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a poller.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// serveUntilReady runs `tokenmq serve args...` in-process until the
// returned stop is called; it returns once the server logged "ready".
func serveUntilReady(t *testing.T, args ...string) (stdout, stderr *syncBuffer, stop func() int) {
	t.Helper()
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- run(ctx, append([]string{"serve"}, args...), stdout, stderr) }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stderr.String(), "msg=ready") {
		select {
		case code := <-done:
			cancel()
			t.Fatalf("serve exited %d before ready: %s", code, stderr)
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("serve not ready after 10s: %s", stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return stdout, stderr, func() int { cancel(); return <-done }
}

func TestServeGeneratesAKeyOnce(t *testing.T) {
	t.Setenv(envKeyID, "")
	t.Setenv(envKeySecret, "")
	dir := t.TempDir()
	args := []string{"--data-dir", dir, "--api-addr", "127.0.0.1:0", "--role", "tokens"}
	stdout, stderr, stop := serveUntilReady(t, args...)
	keyLines := regexp.MustCompile(`export TOKENMQ_ACCESS_KEY_ID=(\S+)\n\s+export TOKENMQ_ACCESS_KEY_SECRET=(\S+)`)
	var m []string
	// The key is printed once the start worked, just after "ready".
	for deadline := time.Now().Add(5 * time.Second); m == nil && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		m = keyLines.FindStringSubmatch(stdout.String())
	}
	if m == nil {
		t.Fatalf("first start did not print a generated key: %q", stdout)
	}
	if strings.Contains(stderr.String(), m[2]) {
		t.Fatal("the generated secret reached the log")
	}
	if code := stop(); code != 0 {
		t.Fatalf("serve exit %d after SIGINT-like cancel: %s", code, stderr)
	}
	fi, err := os.Stat(filepath.Join(dir, generatedKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v", err, fi.Mode().Perm())
	}
	for _, f := range []string{"keys.json", "tokens.db"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, want mode 0600", f, err)
		}
	}

	stdout, stderr, stop = serveUntilReady(t, args...)
	defer stop()
	if strings.Contains(stdout.String(), m[2]) {
		t.Fatal("second start printed the secret again")
	}
	// The generated key works, read from the data dir by the token commands:
	// named by --key-file, or found in --data-dir.
	addr := regexp.MustCompile(`listener=api addr=(\S+)`).FindStringSubmatch(stderr.String())
	for _, where := range [][]string{{"--key-file", filepath.Join(dir, generatedKeyFile)}, {"--data-dir", dir}} {
		code, out, errOut := cli(t, append([]string{"token", "apply", "--endpoint", "http://" + addr[1], "--resources", "a", "--actions", "W"}, where...)...)
		if code != 0 || strings.TrimSpace(out) == "" {
			t.Fatalf("apply with the generated key (%v): exit %d %q %q", where, code, out, errOut)
		}
	}
	// Another data dir has no key: the error says where it looked and how
	// else to give credentials.
	other := t.TempDir()
	code, _, errOut := cli(t, "token", "list", "--endpoint", "http://"+addr[1], "--data-dir", other)
	if code == 0 || !strings.Contains(errOut, filepath.Join(other, generatedKeyFile)) || !strings.Contains(errOut, "--data-dir") || !strings.Contains(errOut, envKeyID) {
		t.Fatalf("token list with a data dir holding no key: exit %d, %q", code, errOut)
	}
}

// tokenmq --help lists every token command; tokenmq token --help is help,
// not an error, and lists them with their synopses.
func TestHelpListsEveryTokenCommand(t *testing.T) {
	code, out, _ := cli(t, "--help")
	if code != 0 {
		t.Fatalf("tokenmq --help: exit %d", code)
	}
	for _, g := range []apiCommands{tokenCommands, clientsCommands} {
		for _, name := range g.order {
			if !strings.Contains(out, "tokenmq "+g.group+" "+name) {
				t.Errorf("tokenmq --help does not name %s %s:\n%s", g.group, name, out)
			}
		}
		for _, h := range []string{"--help", "-h", "help"} {
			code, out, errOut := cli(t, g.group, h)
			if code != 0 || errOut != "" {
				t.Fatalf("tokenmq %s %s: exit %d, stderr %q", g.group, h, code, errOut)
			}
			for _, name := range g.order {
				if !strings.Contains(out, g.subs[name].synopsis) {
					t.Errorf("tokenmq %s %s lacks %q:\n%s", g.group, h, g.subs[name].synopsis, out)
				}
			}
		}
	}
	if code, _, errOut := cli(t, "token", "nope"); code != exitUsage || !strings.Contains(errOut, "sign") {
		t.Fatalf("unknown token command: exit %d, %q", code, errOut)
	}
}

func TestServeRejectsBadConfiguration(t *testing.T) {
	badYAML := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(badYAML, []byte("role: all\nlisten: :1\n"), 0o600)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--role", "everything"}, `role "everything"`},
		{[]string{"--log-format", "xml"}, "log_format"},
		{[]string{"--config", badYAML}, "field listen not found"},
		{[]string{"--config", "/nonexistent.yaml"}, "no such file"},
		{[]string{"--nope"}, "flag provided but not defined"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		code, _, stderr := cli(t, append([]string{"serve"}, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("serve %v: exit %d, %q; want exit 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
}

func TestFlagWinsOverConfigFile(t *testing.T) {
	t.Setenv(envKeyID, testKeyID)
	t.Setenv(envKeySecret, testKeySecret)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "tokenmq.yaml")
	os.WriteFile(cfgPath, []byte("role: tokens\napi_addr: 127.0.0.1:1\ninstance_id: from-file\ndata_dir: "+dir+"\n"), 0o600)
	_, stderr, stop := serveUntilReady(t, "--config", cfgPath, "--api-addr", "127.0.0.1:0")
	defer stop()
	if !strings.Contains(stderr.String(), "instances=[from-file]") || strings.Contains(stderr.String(), "addr=127.0.0.1:1 ") {
		t.Fatalf("config file and flag not combined: %s", stderr)
	}
}

func TestVersionAndHelp(t *testing.T) {
	if code, out, _ := cli(t, "version"); code != 0 || !strings.HasPrefix(out, "tokenmq ") {
		t.Fatalf("version: %d %q", code, out)
	}
	if code, out, _ := cli(t, "help"); code != 0 || !strings.Contains(out, "tokenmq token apply") {
		t.Fatalf("help: %d %q", code, out)
	}
	if code, _, _ := cli(t); code != 2 {
		t.Fatalf("no arguments: exit %d, want 2", code)
	}
}

func TestKeysRotate(t *testing.T) {
	dir := t.TempDir()
	// The keyring exists once a service has started on the data dir.
	if code, _, stderr := cli(t, "keys", "rotate", "--data-dir", dir); code != 1 || !strings.Contains(stderr, "no such file") {
		t.Fatalf("rotate without a keyring: %d %q", code, stderr)
	}
	startServerIn(t, dir).Shutdown(context.Background())
	code, out, _ := cli(t, "keys", "rotate", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "server key 2 added") {
		t.Fatalf("rotate: %d %q", code, out)
	}
}

func TestTokenExplain(t *testing.T) {
	t.Setenv(envKeyID, testKeyID)
	t.Setenv(envKeySecret, testKeySecret)
	url := startServer(t)
	_, tok, _ := cli(t, "token", "apply", "--endpoint", url, "--resources", "dev/+/up", "--actions", "R")
	tok = strings.TrimSpace(tok)
	code, out, _ := cli(t, "token", "explain", tok, "--endpoint", url, "--topic", "dev/7/up")
	if code != 0 || !strings.HasPrefix(out, `allowed: resource "dev/+/up" contains`) {
		t.Fatalf("explain allowed: %d %q", code, out)
	}
	code, out, _ = cli(t, "token", "explain", tok, "--endpoint", url, "--topic", "dev/#")
	if code != 1 || !strings.Contains(out, "denied:") || !strings.Contains(out, "level 2") {
		t.Fatalf("explain denied: %d %q", code, out)
	}
	code, out, _ = cli(t, "token", "explain", tok, "--endpoint", url, "--topic", "dev/7/up", "--operation", "publish")
	if code != 1 || !strings.Contains(out, "do not include publish") {
		t.Fatalf("explain publish: %d %q", code, out)
	}
}

func TestCheckConfig(t *testing.T) {
	t.Setenv(envKeyID, "")
	t.Setenv(envKeySecret, "")
	t.Setenv("BROKER_KEY_SECRET", "broker-secret-0123456789")
	t.Setenv("BACKEND_KEY_SECRET", "backend-secret-0123456789")
	for _, f := range []string{"tokenmq.yaml", "tokens.yaml"} {
		code, out, stderr := cli(t, "serve", "--check-config", "--config", "../../configs/"+f)
		if code != 0 || !strings.Contains(stderr, "configuration OK") || !strings.Contains(out, "role:") {
			t.Errorf("%s: exit %d\n%s\n%s", f, code, out, stderr)
		}
		if strings.Contains(out, "broker-secret-0123456789") {
			t.Errorf("%s: a secret was printed", f)
		}
	}
	// Problems found without starting anything: a short secret, a missing TLS file.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("access_keys:\n  - {id: a, secret: short}\ntls_addr: :8883\ntls_cert: /nope.crt\ntls_key: /nope.key\n"), 0o600)
	code, _, stderr := cli(t, "serve", "--check-config", "--config", bad)
	if code != 2 || !strings.Contains(stderr, "secret shorter") || !strings.Contains(stderr, "tls:") {
		t.Fatalf("bad config: exit %d, %q", code, stderr)
	}
	code, _, stderr = cli(t, "serve", "--check-config", "--role", "broker", "--token-service", "http://x:8080")
	if code != 2 || !strings.Contains(stderr, "role broker signs with") {
		t.Fatalf("broker without credentials: exit %d, %q", code, stderr)
	}
}

// tokenmq token sign makes a URL that a plain HTTP GET (curl) can use once.
func TestTokenSignForCurl(t *testing.T) {
	t.Setenv(envKeyID, testKeyID)
	t.Setenv(envKeySecret, testKeySecret)
	url := startServer(t)
	t.Setenv("TOKENMQ_ENDPOINT", url) // the default endpoint of the token commands
	code, out, _ := cli(t, "token", "sign", "ApplyToken", "Resources=a/+", "Actions=R", fmt.Sprintf("ExpireTime=%d", time.Now().Add(time.Hour).UnixMilli()))
	if code != 0 || !strings.HasPrefix(out, url+"/?") {
		t.Fatalf("sign: %d %q", code, out)
	}
	get := func() (int, string) {
		resp, err := http.Get(strings.TrimSpace(out))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := get(); status != 200 || !strings.Contains(body, `"Token":`) {
		t.Fatalf("GET of the signed URL: %d %s", status, body)
	}
	if status, body := get(); status != 400 || !strings.Contains(body, "SignatureNonceUsed") {
		t.Fatalf("second GET: %d %s", status, body)
	}
}

// token apply --client-id binds the token; query shows the binding;
// explain --client-id answers for that client (SPEC §3.7).
func TestTokenClientBinding(t *testing.T) {
	t.Setenv(envKeyID, testKeyID)
	t.Setenv(envKeySecret, testKeySecret)
	url := startServer(t)
	code, tok, stderr := cli(t, "token", "apply", "--endpoint", url, "--resources", "devices/${clientid}/#", "--actions", "R,W", "--client-id", "pump-*,valve-1")
	tok = strings.TrimSpace(tok)
	if code != 0 {
		t.Fatalf("apply --client-id: exit %d, %q", code, stderr)
	}
	if code, out, _ := cli(t, "token", "query", "--endpoint", url, tok); code != 0 || !strings.Contains(out, "client ids:  pump-*, valve-1") {
		t.Fatalf("query: exit %d, %q", code, out)
	}
	if code, out, _ := cli(t, "token", "explain", tok, "--endpoint", url, "--topic", "devices/pump-3/up", "--operation", "publish", "--client-id", "pump-3"); code != 0 || !strings.Contains(out, `allowed: resource "devices/pump-3/#"`) {
		t.Fatalf("explain for pump-3: exit %d, %q", code, out)
	}
	if code, out, _ := cli(t, "token", "explain", tok, "--endpoint", url, "--topic", "devices/pump-3/up", "--operation", "publish", "--client-id", "gate-1"); code != 1 || !strings.Contains(out, "bound to other client IDs") {
		t.Fatalf("explain for gate-1: exit %d, %q", code, out)
	}
	if code, _, stderr := cli(t, "token", "apply", "--endpoint", url, "--resources", "a", "--actions", "R", "--client-id", "a*b"); code != 1 || !strings.Contains(stderr, "InvalidParameter.ClientId") {
		t.Fatalf("a malformed binding: exit %d, %q", code, stderr)
	}
}

// A start that fails (its MQTT port is taken) generates, stores and prints
// no key: the next start, on a free port, is the first one.
func TestFailedStartMakesNoKey(t *testing.T) {
	t.Setenv(envKeyID, "")
	t.Setenv(envKeySecret, "")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := t.TempDir()
	code, stdout, stderr := cli(t, "serve", "--data-dir", dir, "--api-addr", "127.0.0.1:0", "--mqtt-addr", taken.Addr().String(), "--ws-addr", "")
	if code == 0 {
		t.Fatalf("serve on a taken port: exit 0\n%s", stderr)
	}
	if strings.Contains(stdout, "export "+envKeySecret) {
		t.Fatalf("a failed start printed a generated key:\n%s", stdout)
	}
	if _, err := os.Stat(filepath.Join(dir, generatedKeyFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a failed start left %s (%v)", generatedKeyFile, err)
	}
}
