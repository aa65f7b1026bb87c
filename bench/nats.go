package bench

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/tokenmq/tokenmq/config"
	"github.com/tokenmq/tokenmq/internal/natstest"
	"golang.org/x/crypto/bcrypt"
)

// The NATS targets are one 3-node cluster each (configs/nats/'s layout:
// JetStream, MQTT with three replicas, routes, auth callout), in a child
// process. nats-callout's clients are authorized by a tokenmq token
// service (role tokens, another child) through the callout; nats-static's
// are one user of the servers' own configuration, past the callout: the
// same cluster without tokenmq. Publishers use node 1, subscribers node 2.
var (
	natsStaticUser = natstest.StaticUser{Name: "bench-static", Password: "bench-static-pw"}
	// nats-static-bcrypt: the same with the password stored as NATS
	// recommends (it warns about plaintext ones), bcrypt at Go's default cost.
	natsBcryptUser = natstest.StaticUser{Name: "bench-bcrypt", Password: "bench-bcrypt-pw"}
)

// benchT stands in for *testing.T where natstest needs one.
type benchT struct{ cleanups []func() }

func (b *benchT) Helper()                           {}
func (b *benchT) Fatal(args ...any)                 { panic(fmt.Sprint(args...)) }
func (b *benchT) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (b *benchT) Cleanup(f func())                  { b.cleanups = append(b.cleanups, f) }
func (b *benchT) TempDir() string {
	d, err := os.MkdirTemp("", "tokenmq-bench-nats-")
	if err != nil {
		panic(err)
	}
	b.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func (b *benchT) done() {
	for i := len(b.cleanups) - 1; i >= 0; i-- {
		b.cleanups[i]()
	}
}

// serveNATS runs the cluster of a NATS target until stdin closes.
func serveNATS(stdout io.Writer) (err error) {
	bt := &benchT{}
	defer bt.done()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("nats cluster: %v", r)
		}
	}()
	hashed := natsBcryptUser
	h, err := bcrypt.GenerateFromPassword([]byte(hashed.Password), bcrypt.DefaultCost)
	if err != nil {
		return err
	}
	hashed.PasswordHash = string(h)
	c := natstest.Start(bt, natstest.Options{Nodes: 3, Callout: true, StaticUsers: []natstest.StaticUser{natsStaticUser, hashed}})
	seed, _ := c.Issuer.Seed()
	seedFile := filepath.Join(bt.TempDir(), "issuer.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "READY mqtt=%s sub=%s url=%s auth=%s sys=%s seed=%s\n", c.MQTT(0), c.MQTT(1), c.URL(), c.AuthPass, c.SysPass, seedFile)
	io.Copy(io.Discard, os.Stdin)
	return nil
}

func startNATS(name string) (*target, error) {
	cl, v, err := startChild("nats")
	if err != nil {
		return nil, err
	}
	t := &target{name: name, kind: name, mqtt: v["mqtt"], sub: v["sub"], proc: cl}
	if name != "nats-callout" {
		return t, nil
	}
	tokens, tv, err := startChildEnv([]string{"TOKENMQ_BENCH_NATS_URL=" + v["url"], "TOKENMQ_BENCH_NATS_AUTH=" + v["auth"],
		"TOKENMQ_BENCH_NATS_SYS=" + v["sys"], "TOKENMQ_BENCH_NATS_SEED=" + v["seed"]}, "tokenmq", config.RoleTokens)
	if err != nil {
		cl.stop()
		return nil, err
	}
	t.also = []*child{tokens}
	t.api = apiClient("http://" + tv["api"])
	return t, nil
}

var natsTargets = []string{"nats-callout", "nats-static", "nats-static-bcrypt"}

func isNATS(name string) bool { return strings.HasPrefix(name, "nats-") }
