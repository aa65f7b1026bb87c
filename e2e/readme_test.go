package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/internal/testkit"
)

// readmeBlock is a fenced block of README.md marked as tested.
type readmeBlock struct {
	line     int
	commands []string
}

// testedBlocks returns the README's "```console test" and "```sh test"
// blocks: the commands of a console block are its "$ " lines; of an sh
// block, every line.
func testedBlocks(t *testing.T) []readmeBlock {
	t.Helper()
	f, err := os.Open("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []readmeBlock
	var cur *readmeBlock
	console := false
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && (line == "```console test" || line == "```sh test"):
			cur, console = &readmeBlock{line: n}, line == "```console test"
		case cur != nil && line == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil && console && strings.HasPrefix(line, "$ "):
			cur.commands = append(cur.commands, strings.TrimPrefix(line, "$ "))
		case cur != nil && !console && strings.TrimSpace(line) != "" && !strings.HasPrefix(line, "#"):
			cur.commands = append(cur.commands, line)
		}
	}
	return out
}

// Issue 7: every README command block marked as tested runs, as written,
// against a real `tokenmq serve` (only its ports are this test's).
func TestReadmeCommands(t *testing.T) {
	blocks := testedBlocks(t)
	if len(blocks) < 3 {
		t.Fatalf("only %d tested blocks in README.md", len(blocks))
	}
	for _, tool := range []string{"mosquitto_pub", "mosquitto_sub", "curl"} {
		needMosquittoClients(t, tool) // skips (fails in CI) without the clients
	}
	// As a reader runs it: serve with no key configured (it generates and
	// stores one in ./data), and the blocks in a shell with no tokenmq
	// variable but the endpoint, whose port is this test's.
	dir := t.TempDir()
	p := startTokenmqAs(t, "", "", "--api-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--ws-addr", "", "--data-dir", filepath.Join(dir, "data"))
	testkit.WaitFor(t, 5*time.Second, "the MQTT address", func() bool { return p.mqttAddr() != "" })
	api := strings.TrimPrefix(p.apiURL, "http://")
	_, mqttPort, _ := strings.Cut(p.mqttAddr(), ":")
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TOKENMQ_") {
			env = append(env, kv)
		}
	}
	env = append(env, "PATH="+filepath.Dir(binary)+string(os.PathListSeparator)+os.Getenv("PATH"), "TOKENMQ_ENDPOINT="+p.apiURL)
	for _, b := range blocks {
		script := strings.Join(b.commands, "\n")
		script = strings.ReplaceAll(script, "127.0.0.1:8080", api)
		script = strings.ReplaceAll(script, "-p 1883", "-p "+mqttPort)
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("README.md block at line %d failed: %v\n%s\n--- output ---\n%s", b.line, err, script, out)
		}
	}
}

// readmeRaw returns the lines of the README's blocks opened with fence.
func readmeRaw(t *testing.T, fence string) []readmeBlock {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var out []readmeBlock
	var cur *readmeBlock
	for n, line := range strings.Split(string(b), "\n") {
		switch {
		case cur == nil && line == fence:
			cur = &readmeBlock{line: n + 1}
		case cur != nil && line == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.commands = append(cur.commands, line)
		}
	}
	return out
}

// Issue 18: the README's examples of testing an application against
// `tokenmq serve --dev` — a shell test and a Node.js (MQTT.js) one — run as
// written against the binary (only the ports are this test's).
func TestReadmeDevExamples(t *testing.T) {
	shell, js := readmeRaw(t, "```sh dev-test"), readmeRaw(t, "```js dev-test")
	if len(shell) != 1 || len(js) != 1 {
		t.Fatalf("%d shell and %d js dev-test blocks in README.md, want 1 and 1", len(shell), len(js))
	}
	for _, tool := range []string{"mosquitto_pub", "mosquitto_sub"} {
		needMosquittoClients(t, tool)
	}
	needBrowser(t) // node and e2e/browser/node_modules (mqtt)
	p := startTokenmqAs(t, "", "", "--dev", "--api-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--ws-addr", "")
	testkit.WaitFor(t, 5*time.Second, "the MQTT address", func() bool { return p.mqttAddr() != "" })
	api := strings.TrimPrefix(p.apiURL, "http://")
	_, mqttPort, _ := strings.Cut(p.mqttAddr(), ":")
	ports := strings.NewReplacer("127.0.0.1:8080", api, "127.0.0.1:1883", p.mqttAddr(), "-p 1883", "-p "+mqttPort)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TOKENMQ_") {
			env = append(env, kv)
		}
	}
	env = append(env, "PATH="+filepath.Dir(binary)+string(os.PathListSeparator)+os.Getenv("PATH"))
	exports := ""
	for _, line := range shell[0].commands {
		if strings.HasPrefix(line, "export ") {
			exports = ports.Replace(line)
		}
	}
	run := func(what string, b readmeBlock, cmd *exec.Cmd) {
		t.Helper()
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("README.md %s at line %d failed: %v\n--- output ---\n%s", what, b.line, err, out)
		}
	}
	run("shell test", shell[0], exec.Command("bash", "-euo", "pipefail", "-c", ports.Replace(strings.Join(shell[0].commands, "\n"))))
	// The Node.js test, as device.test.mjs beside e2e/browser's node_modules.
	file := filepath.Join("browser", fmt.Sprintf("readme-device-%d.test.mjs", os.Getpid()))
	if err := os.WriteFile(file, []byte(ports.Replace(strings.Join(js[0].commands, "\n"))), 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(file)
	run("Node.js test", js[0], exec.Command("bash", "-euo", "pipefail", "-c", exports+"\nnode "+file))
}

// The contract is in the repository (docs/SPEC.md), so that a clone is
// complete; where the team's shared copy sits beside the checkout
// (../shared/SPEC.md, as in CI), the two are the same text.
func TestSpecCopyIsCurrent(t *testing.T) {
	ours, err := os.ReadFile("../docs/SPEC.md")
	if err != nil {
		t.Fatalf("docs/SPEC.md: %v", err)
	}
	shared, err := os.ReadFile("../../shared/SPEC.md")
	if errors.Is(err, fs.ErrNotExist) {
		t.Skip("no ../shared/SPEC.md beside the checkout to compare docs/SPEC.md with")
	}
	if err != nil {
		t.Fatal(err)
	}
	if string(ours) != string(shared) {
		t.Fatal("docs/SPEC.md differs from ../shared/SPEC.md: copy the shared one over it (cp ../shared/SPEC.md docs/SPEC.md)")
	}
}
