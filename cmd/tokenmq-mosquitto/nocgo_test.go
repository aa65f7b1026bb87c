//go:build !cgo

package main

import "testing"

func TestNeedsCgo(t *testing.T) {
	t.Skip("SKIP-NEEDS-CGO: the Mosquitto plugin's tests need cgo and a C compiler (apt-get install gcc; CGO_ENABLED=1)")
}
