//go:build !cgo

// Without cgo (CGO_ENABLED=0, or no C compiler) there is no plugin: it is
// a C shared library. This stands in so that the module builds anyway.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "tokenmq-mosquitto is a Mosquitto plugin: go build -buildmode=c-shared -o tokenmq_mosquitto.so ./cmd/tokenmq-mosquitto, with cgo and a C compiler")
	os.Exit(2)
}
