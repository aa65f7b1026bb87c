package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/nats-io/nkeys"

	"github.com/tokenmq/tokenmq/broker"
)

const natsUsage = `Usage: tokenmq nats issuer FILE

Prints the public key of the account nkey seed in FILE (the servers'
auth_callout.issuer), creating FILE with a new seed (mode 0600) if it
does not exist. FILE is nats.issuer_seed_file in tokenmq's configuration.
`

// natsCommand serves "tokenmq nats": the callout's issuer key.
func natsCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprint(stdout, natsUsage)
		return exitOK
	}
	if len(args) != 2 || args[0] != "issuer" {
		fmt.Fprint(stderr, natsUsage)
		return exitUsage
	}
	path := args[1]
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		kp, err := nkeys.CreateAccount()
		if err != nil {
			fmt.Fprintf(stderr, "tokenmq nats issuer: %v\n", err)
			return exitFailure
		}
		seed, _ := kp.Seed()
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			fmt.Fprintf(stderr, "tokenmq nats issuer: %v\n", err)
			return exitFailure
		}
		_, werr := f.Write(append(seed, '\n'))
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			fmt.Fprintf(stderr, "tokenmq nats issuer: %v\n", werr)
			return exitFailure
		}
		fmt.Fprintf(stderr, "wrote a new account seed to %s\n", path)
	}
	kp, err := broker.LoadIssuer(path)
	if err != nil {
		fmt.Fprintf(stderr, "tokenmq nats issuer: %v\n", err)
		return exitFailure
	}
	pub, _ := kp.PublicKey()
	fmt.Fprintln(stdout, pub)
	return exitOK
}
