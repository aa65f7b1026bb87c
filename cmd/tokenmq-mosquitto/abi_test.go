//go:build cgo

package main

import (
	"os"
	"os/exec"
	"testing"
)

// shim.h declares Mosquitto's plugin interface itself, so that the plugin
// builds without Mosquitto's headers. Where they are installed, its
// declarations are compiled against them: a function declared otherwise,
// a constant or a struct field that differs is a compile error.
func TestShimMatchesMosquittoHeaders(t *testing.T) {
	if _, err := os.Stat("/usr/include/mosquitto_broker.h"); err != nil {
		msg := "SKIP-NEEDS-MOSQUITTO-HEADERS: /usr/include/mosquitto_broker.h not found (apt-get install mosquitto-dev libmosquitto-dev; .ci/run does)"
		if os.Getenv("TOKENMQ_REQUIRE_MOSQUITTO") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	out, err := exec.Command(cc, "-std=c11", "-fsyntax-only", "-Wall", "-Werror", "testdata/abi_check.c").CombinedOutput()
	if err != nil {
		t.Fatalf("shim.h disagrees with Mosquitto's headers: %v\n%s", err, out)
	}
}
