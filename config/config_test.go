package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// The commented example in configs/ must load and validate.
func TestExampleConfigs(t *testing.T) {
	matches, err := filepath.Glob("../configs/*.yaml")
	if err != nil || len(matches) == 0 {
		t.Fatalf("no example configs: %v", err)
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
