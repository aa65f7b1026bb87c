package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and failed (or, for token query, the token is invalid)
	exitUsage   = 2 // bad command line or configuration
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

const usage = `tokenmq — MQTT broker with token authentication, and its token service

Usage:
  tokenmq serve [flags]                 run broker and token service (see tokenmq serve -h)
  tokenmq serve --dev                   a stand-in for ApsaraMQ in your tests: loopback, fixed printed key, short TTLs
  tokenmq token apply --resources 'a/+,b/#' --actions R,W --ttl 1h
  tokenmq token query TOKEN
  tokenmq token revoke TOKEN
  tokenmq token get [--display] TOKEN_ID
  tokenmq token list [--all]
  tokenmq token explain TOKEN --topic TOPIC --operation publish|subscribe
  tokenmq token sign ACTION [Name=Value ...]   a signed GET URL, for curl
                                        (tokenmq token -h: every token command and its flags)
  tokenmq clients list [--token-id ID] [--client-id ID]   the MQTT connections, on every broker
  tokenmq clients kick CLIENT_ID        disconnect a client (0x98) and discard its session
  tokenmq keys rotate [--data-dir DIR]  start minting tokens with a new server key
  tokenmq nats issuer FILE              the NATS callout's issuer key (created if FILE is missing)
  tokenmq version

Client commands sign with TOKENMQ_ACCESS_KEY_ID and TOKENMQ_ACCESS_KEY_SECRET.
`

// run is the whole program; main only wires it to the process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "token":
		return tokenCommand(ctx, args[1:], stdout, stderr)
	case "clients":
		return clientsCommand(ctx, args[1:], stdout, stderr)
	case "keys":
		return keysCommand(args[1:], stdout, stderr)
	case "nats":
		return natsCommand(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "tokenmq %s (%s, %s)\n", buildVersion(), runtime.Version(), runtime.GOOS+"/"+runtime.GOARCH)
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "tokenmq: unknown command %q\n\n%s", args[0], usage)
	return exitUsage
}

func buildVersion() string {
	if version != "dev" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
	}
	return version
}

// parseInterspersed parses flags that may come before, between or after the
// positional arguments, and returns the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// newFlagSet returns a FlagSet that reports errors (not exits) and prints
// its usage to stderr.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// flagExit maps a flag parsing error to an exit code: -h is not a failure.
func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsage
}

// oneLine flattens a multi-line error for a one-line message.
func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }
