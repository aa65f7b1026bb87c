package main

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/api"
)

// serve --dev: the fixed key, printed; tokens from 1 s; a throwaway data
// dir, gone at exit.
func TestServeDev(t *testing.T) {
	t.Setenv(envKeyID, "")
	t.Setenv(envKeySecret, "")
	stdout, stderr, stop := serveUntilReady(t, "--dev", "--api-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--ws-addr", "127.0.0.1:0")
	banner := regexp.MustCompile(`export TOKENMQ_ENDPOINT=(\S+) TOKENMQ_ACCESS_KEY_ID=(\S+) TOKENMQ_ACCESS_KEY_SECRET=(\S+)`)
	var m []string
	deadline := time.Now().Add(5 * time.Second)
	for m = banner.FindStringSubmatch(stdout.String()); m == nil; m = banner.FindStringSubmatch(stdout.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("no banner: %s\n%s", stdout, stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if m[2] != devKeyID || m[3] != devKeySecret {
		t.Fatalf("banner key %s / %s", m[2], m[3])
	}
	for _, want := range []string{"MQTT        127.0.0.1:", "WebSocket   ws://127.0.0.1:", "instance mqtt-local"} {
		if !strings.Contains(stdout.String(), want) {
			t.Fatalf("banner lacks %q:\n%s", want, stdout)
		}
	}
	dir := regexp.MustCompile(`data in (\S+) `).FindStringSubmatch(stdout.String())
	if dir == nil {
		t.Fatalf("banner names no data dir:\n%s", stdout)
	}
	if _, err := os.Stat(dir[1]); err != nil {
		t.Fatal(err)
	}
	c := &api.Client{Endpoint: m[1], AccessKeyID: m[2], AccessKeySecret: m[3]}
	if _, err := c.ApplyToken(context.Background(), api.ApplyTokenRequest{InstanceID: "mqtt-local", Resources: []string{"a/#"},
		Actions: "R", ExpireTime: time.Now().Add(2 * time.Second)}); err != nil {
		t.Fatalf("a 2-second token under --dev: %v", err)
	}
	if code := stop(); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(dir[1]); !os.IsNotExist(err) {
		t.Fatalf("the dev data dir outlived the server: %v", err)
	}
	if code, _, errOut := cli(t, "serve", "--dev", "--role", "broker"); code != exitUsage || !strings.Contains(errOut, "--dev") {
		t.Fatalf("--dev --role broker: exit %d, %q", code, errOut)
	}
}
