package config

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func write(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tokenmq.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func noEnv(string) string { return "" }

func TestDefaultsAreValid(t *testing.T) {
	c := Default()
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Tokens.Instances[0] != "mqtt-local" || c.APIAddr != ":8080" || c.MQTTAddr != ":1883" || c.WSAddr != ":8083" {
		t.Fatalf("defaults %+v", c)
	}
}

func TestLoadOverridesDefaults(t *testing.T) {
	p := write(t, `
role: tokens
api_addr: 127.0.0.1:9000
ws_addr: ""          # disables WebSocket
instance_id: post-cn-abc
tokens:
  gc_grace: 2h
api:
  rate_limits:
    apply_token: 5
access_keys:
  - id: AK1
    secret_env: MY_SECRET
    instances: [post-cn-abc]
`)
	c, err := Load(p, func(k string) string {
		if k == "MY_SECRET" {
			return "from-the-environment"
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Role != "tokens" || c.APIAddr != "127.0.0.1:9000" || c.WSAddr != "" || c.Tokens.GCGrace != 2*time.Hour {
		t.Fatalf("loaded %+v", c)
	}
	if c.Tokens.MinTTL != time.Minute || c.API.RateLimits.QueryToken != 100 || c.API.RateLimits.ApplyToken != 5 {
		t.Fatalf("defaults not kept beside the file's values: %+v", c)
	}
	if k := c.AccessKeys[0]; k.Secret != "from-the-environment" || k.Role != "admin" {
		t.Fatalf("access key %+v", k)
	}
	if c.Tokens.Instances[0] != "post-cn-abc" {
		t.Fatalf("tokens.instances default %v", c.Tokens.Instances)
	}
}

func TestLoadRejects(t *testing.T) {
	for name, tc := range map[string]struct{ yaml, want string }{
		"unknown key":          {"rolee: all\n", "field rolee not found"},
		"unknown nested key":   {"tokens:\n  min_tll: 1s\n", "field min_tll not found"},
		"bad duration":         {"tokens:\n  gc_grace: soon\n", "line 2: cannot unmarshal !!str `soon` into time.Duration"},
		"wrong type":           {"api:\n  nonce_capacity: many\n", "line 2: cannot unmarshal !!str `many` into int"},
		"two documents":        {"role: all\n---\nrole: tokens\n", "more than one YAML document"},
		"secret and env":       {"access_keys:\n  - {id: A, secret: s, secret_env: E}\n", "both secret and secret_env"},
		"empty secret env var": {"access_keys:\n  - {id: A, secret_env: UNSET}\n", "UNSET is empty"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Load(write(t, tc.yaml), noEnv)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestValidateRejects(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func(*Config)
		want string
	}{
		"role":        {func(c *Config) { c.Role = "both" }, `role "both"`},
		"instance":    {func(c *Config) { c.InstanceID = "has space" }, "instance_id"},
		"tls partial": {func(c *Config) { c.TLSAddr = ":8883" }, "go together"},
		"log level":   {func(c *Config) { c.LogLevel = "loud" }, "log_level"},
		"log format":  {func(c *Config) { c.LogFormat = "xml" }, "log_format"},
		"ttl order":   {func(c *Config) { c.Tokens.MaxTTL = time.Second }, "shorter than min_ttl"},
		"rate":        {func(c *Config) { c.API.RateLimits.Other = -1 }, "rate_limits"},
		"key role":    {func(c *Config) { c.AccessKeys = []AccessKey{{ID: "A", Secret: "s", Role: "root"}} }, `role "root"`},
		"store":       {func(c *Config) { c.Store = "mysql://u:pw@h/db" }, "mysql://…@h/db"},
	} {
		t.Run(name, func(t *testing.T) {
			c := Default()
			tc.edit(&c)
			c.SetDefaults()
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "pw@") {
				t.Fatal("a password reached an error message")
			}
		})
	}
}

// The commented examples in configs/ load and validate, with the
// secrets they name in the environment; configs/tokenmq.yaml, which shows
// the defaults, loads with no environment at all.
func TestExampleConfigs(t *testing.T) {
	matches, err := filepath.Glob("../configs/*.yaml")
	nested, _ := filepath.Glob("../configs/*/*.yaml")
	matches = append(matches, nested...)
	if err != nil || len(matches) < 5 {
		t.Fatalf("example configs: %v %v", matches, err)
	}
	c, err := Load("../configs/tokenmq.yaml", noEnv)
	if err != nil {
		t.Fatalf("configs/tokenmq.yaml as it is: %v", err)
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("configs/tokenmq.yaml as it is: %v", err)
	}
	for _, p := range matches {
		c, err := Load(p, func(string) string { return "a-secret-from-the-environment" })
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		c.SetDefaults()
		if err := c.Validate(); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
}

// Every file in testdata/good loads and validates; every file in
// testdata/bad is refused with the error its "# want:" line names.
func TestConfigFiles(t *testing.T) {
	good, _ := filepath.Glob("testdata/good/*.yaml")
	bad, _ := filepath.Glob("testdata/bad/*.yaml")
	if len(good) < 3 || len(bad) < 10 {
		t.Fatalf("testdata: %d good, %d bad files", len(good), len(bad))
	}
	load := func(p string) error {
		c, err := Load(p, noEnv)
		if err != nil {
			return err
		}
		c.SetDefaults()
		return c.Validate()
	}
	for _, p := range good {
		if err := load(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	for _, p := range bad {
		b, _ := os.ReadFile(p)
		first, _, _ := strings.Cut(string(b), "\n")
		want, ok := strings.CutPrefix(first, "# want: ")
		if !ok {
			t.Fatalf("%s: first line must be '# want: <error text>'", p)
		}
		if err := load(p); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v; want an error containing %q", p, err, want)
		}
	}
}

// keyPaths collects the dotted key paths of a decoded YAML document; the
// keys of a list's elements are the list's.
func keyPaths(prefix string, v any, into map[string]bool) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			into[prefix+k] = true
			keyPaths(prefix+k+".", x, into)
		}
	case []any:
		for _, x := range v {
			keyPaths(prefix, x, into)
		}
	}
}

// commentedKey is a commented-out key line: "# key: ..." or "# - key: ...".
var commentedKey = regexp.MustCompile(`^(\s*)# ?(\s*)((?:- )?[a-z_]+:(?:\s|$).*)$`)

// configs/tokenmq.yaml says it shows every key: it names (set or commented
// out) every key the configuration has, as --check-config prints them.
func TestFullExampleNamesEveryKey(t *testing.T) {
	full := Default()
	full.AccessKeys = []AccessKey{{ID: "k", Secret: "s", SecretEnv: "E", Role: "admin", Instances: []string{"i"}}}
	b, err := yaml.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	if err := yaml.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("../configs/tokenmq.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, line := range strings.Split(string(src), "\n") {
		if m := commentedKey.FindStringSubmatch(line); m != nil {
			line = m[1] + m[2] + m[3] // the comment's own indentation is the key's
		}
		lines = append(lines, line)
	}
	var got map[string]any
	if err := yaml.Unmarshal([]byte(strings.Join(lines, "\n")), &got); err != nil {
		t.Fatalf("configs/tokenmq.yaml with its commented keys uncommented: %v", err)
	}
	wantPaths, gotPaths := map[string]bool{}, map[string]bool{}
	keyPaths("", want, wantPaths)
	keyPaths("", got, gotPaths)
	var missing []string
	for p := range wantPaths {
		if !gotPaths[p] {
			missing = append(missing, p)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("configs/tokenmq.yaml does not name: %s", strings.Join(missing, ", "))
	}
}
