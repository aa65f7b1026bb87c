// Package natstest runs real nats-server clusters in process, configured
// as SPEC §6.2 deploys them (auth callout, JetStream, MQTT, routes), for
// the tests and the benchmark.
package natstest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// Account names and users of the layout (configs/nats/ uses the same).
const (
	AuthAccount = "AUTH"
	MQTTAccount = "MQTT"
	SysAccount  = "SYS"
	AuthUser    = "auth"
	SysUser     = "sys"
)

// StaticUser is an MQTT user of the servers' own configuration, in the
// MQTT account and past the callout: the benchmark's baseline.
type StaticUser struct {
	Name, Password string
	// PasswordHash, if set, is what the configuration holds instead of the
	// password: a bcrypt hash of it, as NATS recommends.
	PasswordHash string
}

// Options shape a cluster.
type Options struct {
	// Nodes is the number of servers; default 3.
	Nodes int
	// Callout turns auth_callout on (issuer: the cluster's Issuer).
	Callout bool
	// StaticUsers are configured users in the MQTT account.
	StaticUsers []StaticUser
	// AuthTimeout is the servers' authorization timeout; default 2s.
	AuthTimeout time.Duration
}

// T is what a cluster needs of its test: *testing.T, or the benchmark's
// stand-in.
type T interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
	TempDir() string
}

var _ T = testing.TB(nil)

// Cluster is a running set of servers.
type Cluster struct {
	t        T
	opts     Options
	dir      string
	Issuer   nkeys.KeyPair
	AuthPass string
	SysPass  string
	nodes    []*node
}

type node struct {
	name                         string
	clientPort, mqttPort, clPort int
	srv                          *server.Server
}

// Start runs a cluster and waits until JetStream has a leader; the servers
// stop at the end of the test.
func Start(t T, o Options) *Cluster {
	t.Helper()
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.AuthTimeout == 0 {
		o.AuthTimeout = 2 * time.Second
	}
	issuer, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{t: t, opts: o, dir: t.TempDir(), Issuer: issuer, AuthPass: secret(), SysPass: secret()}
	ports := freePorts(t, 3*o.Nodes)
	for i := range o.Nodes {
		c.nodes = append(c.nodes, &node{name: fmt.Sprintf("n%d", i+1), clientPort: ports[3*i], mqttPort: ports[3*i+1], clPort: ports[3*i+2]})
	}
	for i := range c.nodes {
		c.startNode(i)
	}
	t.Cleanup(c.Stop)
	c.WaitJetStream()
	return c
}

// Config is the configuration text of node i.
func (c *Cluster) Config(i int) string {
	n := c.nodes[i]
	pub, _ := c.Issuer.PublicKey()
	var routes []string
	for _, m := range c.nodes {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", m.clPort))
	}
	var static strings.Builder
	var authUsers = []string{AuthUser, SysUser}
	for _, u := range c.opts.StaticUsers {
		pw := u.Password
		if u.PasswordHash != "" {
			pw = u.PasswordHash
		}
		fmt.Fprintf(&static, "      { user: %q, password: %q }\n", u.Name, pw)
		authUsers = append(authUsers, u.Name)
	}
	callout := ""
	if c.opts.Callout {
		callout = fmt.Sprintf(`
  auth_callout {
    issuer: %s
    account: %s
    auth_users: [ %s ]
  }`, pub, AuthAccount, strings.Join(authUsers, ", "))
	}
	replicas := min(3, len(c.nodes))
	cluster := ""
	if len(c.nodes) > 1 {
		cluster = fmt.Sprintf(`
cluster {
  name: tokenmq
  listen: 127.0.0.1:%d
  routes: [ %s ]
}`, n.clPort, strings.Join(routes, ", "))
	}
	return fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
jetstream { store_dir: %q, max_memory_store: 64MB, max_file_store: 512MB }
accounts {
  %s: { users: [ { user: %s, password: %q, allowed_connection_types: ["STANDARD"] } ] }
  %s: {
    jetstream: enabled
    users: [
%s    ]
  }
  %s: { users: [ { user: %s, password: %q, allowed_connection_types: ["STANDARD"] } ] }
}
system_account: %s
authorization {
  timeout: %g%s
}
mqtt { listen: 127.0.0.1:%d, stream_replicas: %d }
%s
`, n.name, n.clientPort, filepath.Join(c.dir, n.name), AuthAccount, AuthUser, c.AuthPass, MQTTAccount, static.String(),
		SysAccount, SysUser, c.SysPass, SysAccount, c.opts.AuthTimeout.Seconds(), callout, n.mqttPort, replicas, cluster)
}

func (c *Cluster) startNode(i int) {
	c.t.Helper()
	opts := &server.Options{}
	if err := opts.ProcessConfigString(c.Config(i)); err != nil {
		c.t.Fatalf("nats config of %s: %v\n%s", c.nodes[i].name, err, c.Config(i))
	}
	opts.NoSigs, opts.NoLog = true, os.Getenv("TOKENMQ_NATS_LOG") == ""
	s, err := server.NewServer(opts)
	if err != nil {
		c.t.Fatalf("nats server %s: %v", c.nodes[i].name, err)
	}
	if !opts.NoLog {
		s.ConfigureLogger()
	}
	s.Start()
	if !s.ReadyForConnections(20 * time.Second) {
		c.t.Fatalf("nats server %s not ready", c.nodes[i].name)
	}
	c.nodes[i].srv = s
}

// WaitJetStream waits until the running servers agree on a JetStream
// leader: MQTT sessions need it.
func (c *Cluster) WaitJetStream() {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		leader, current := false, true
		for _, n := range c.nodes {
			if n.srv == nil {
				continue
			}
			leader = leader || n.srv.JetStreamIsLeader()
			current = current && n.srv.JetStreamIsCurrent()
		}
		if leader && current {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatal("nats: no JetStream leader within 30s")
}

// StopNode shuts server i down (the others keep running).
func (c *Cluster) StopNode(i int) {
	if s := c.nodes[i].srv; s != nil {
		s.Shutdown()
		s.WaitForShutdown()
		c.nodes[i].srv = nil
	}
}

// RestartNode starts server i again, with its store.
func (c *Cluster) RestartNode(i int) {
	c.startNode(i)
	c.WaitJetStream()
}

// Stop shuts every server down.
func (c *Cluster) Stop() {
	for i := range c.nodes {
		c.StopNode(i)
	}
}

// URL is the client URLs of the running servers, comma-separated.
func (c *Cluster) URL() string {
	var urls []string
	for _, n := range c.nodes {
		if n.srv != nil {
			urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", n.clientPort))
		}
	}
	return strings.Join(urls, ",")
}

// MQTT is server i's MQTT address.
func (c *Cluster) MQTT(i int) string { return fmt.Sprintf("127.0.0.1:%d", c.nodes[i].mqttPort) }

// Server is server i (nil while stopped).
func (c *Cluster) Server(i int) *server.Server { return c.nodes[i].srv }

// Nodes is the number of servers.
func (c *Cluster) Nodes() int { return len(c.nodes) }

// freePorts picks n distinct ports below 32768 that are free now (the
// servers' routes must be known before they start, so the ports cannot
// be left to the kernel).
func freePorts(t T, n int) []int {
	t.Helper()
	var out []int
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for tries := 0; len(out) < n && tries < 1000; tries++ {
		r, _ := rand.Int(rand.Reader, big.NewInt(32767-20000))
		p := 20000 + int(r.Int64())
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		held = append(held, l)
		out = append(out, p)
	}
	if len(out) < n {
		t.Fatal("no free ports below 32768")
	}
	return out
}

func secret() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
