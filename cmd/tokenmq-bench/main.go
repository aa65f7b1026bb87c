// Command tokenmq-bench measures tokenmq against a plain Mochi broker with
// the allow-all hook (the no-auth ceiling) and, when installed, Mosquitto
// with a password file and an ACL file, all started in the same run. See
// the README's benchmark section.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/tokenmq/tokenmq/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := bench.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
