package e2e

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/tokenmq/tokenmq/api"
	"github.com/tokenmq/tokenmq/internal/testkit"
)

// proxy forwards TCP to a target that can change, and can cut every
// connection: a network partition between a broker and its token service.
type proxy struct {
	ln     net.Listener
	mu     sync.Mutex
	target string
	cut    bool
	hang   bool // accept, and answer nothing: a token service that is stuck
	conns  map[net.Conn]struct{}
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { ln.Close(); p.setCut(true) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *proxy) url() string { return "http://" + p.ln.Addr().String() }

func (p *proxy) serve(c net.Conn) {
	p.mu.Lock()
	target, cut, hang := p.target, p.cut, p.hang
	if hang {
		p.conns[c] = struct{}{} // closed by the next cut
	}
	p.mu.Unlock()
	if cut {
		c.Close()
		return
	}
	if hang {
		io.Copy(io.Discard, c)
		return
	}
	up, err := net.DialTimeout("tcp", target, time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	go func() { io.Copy(up, c); up.Close() }()
	io.Copy(c, up)
	c.Close()
}

// setCut cuts (true: closes every connection, refuses new ones) or restores.
func (p *proxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		p.closeAllLocked()
	}
}

// setHang makes connections hang (true: the open ones are closed, new ones
// are accepted and never answered) or pass (false).
func (p *proxy) setHang(hang bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hang = hang
	if hang {
		p.closeAllLocked()
	}
	p.mu.Unlock()
	// Let clients' HTTP pools see the closed connections: a request sent on
	// one of them would fail at once with EOF instead of meeting the hang.
	time.Sleep(100 * time.Millisecond)
	p.mu.Lock()
}

// closeAllLocked closes every connection through the proxy; p.mu is held.
func (p *proxy) closeAllLocked() {
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]struct{}{}
}

func (p *proxy) retarget(target string) { p.mu.Lock(); p.target = target; p.mu.Unlock() }

const (
	brokerKeyID     = "AKE2EBROKER001"
	brokerKeySecret = "e2e-broker-secret-0123456789"
)

// splitRoles starts `tokenmq serve --role tokens` and `--role broker`
// (real binaries), the broker reaching the token service through a proxy
// and signing with a key of role broker.
func splitRoles(t *testing.T) (tokens, brk *proc, px *proxy, admin *api.Client, dataDir string) {
	t.Helper()
	dataDir = t.TempDir()
	cfg := writeConfig(t, "access_keys:\n  - {id: "+brokerKeyID+", secret: "+brokerKeySecret+", role: broker}\n"+
		"api:\n  rate_limits: {apply_token: 0, query_token: 0, other: 0}\n")
	tokens = startTokenmq(t, "--config", cfg, "--role", "tokens", "--api-addr", "127.0.0.1:0", "--data-dir", dataDir)
	px = newProxy(t, tokens.apiURL[len("http://"):])
	brk = startTokenmqAs(t, brokerKeyID, brokerKeySecret, "--role", "broker", "--token-service", px.url(),
		"--api-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--ws-addr", "", "--data-dir", t.TempDir())
	testkit.WaitFor(t, 5*time.Second, "the broker's MQTT address", func() bool { return brk.mqttAddr() != "" })
	admin = &api.Client{Endpoint: tokens.apiURL, AccessKeyID: adminID, AccessKeySecret: adminSecret}
	return tokens, brk, px, admin, dataDir
}

// SPEC §3.5 across processes: a revocation at the token service reaches a
// broker in another process within a second.
func TestSplitRolesRevocation(t *testing.T) {
	_, brk, _, admin, _ := splitRoles(t)
	tok := applyWith(t, admin, "dev/#", "R,W", time.Hour)
	dev := mustConnect5(t, brk.mqttAddr(), "dev", "d", tok)
	if c := dev.publish("dev/x", 1, false, "hello"); c != 0 {
		t.Fatalf("publish through the broker: 0x%02x", c)
	}
	if _, code := connect5(t, brk.mqttAddr(), "forged", "d", tok[:50]+"AAAA"+tok[54:]); code != 0x86 {
		t.Fatalf("forged token through the broker: 0x%02x", code)
	}
	start := time.Now()
	if _, err := admin.RevokeToken(context.Background(), "mqtt-local", tok); err != nil {
		t.Fatal(err)
	}
	if r := dev.waitClosed(2 * time.Second); r != 0x98 {
		t.Fatalf("DISCONNECT 0x%02x, want 0x98", r)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("revocation reached the other process's client after %v", d)
	}
}

// SPEC §3.5 outages: with the token service unreachable, connected clients
// stay, cached tokens reconnect, unknown ones get 0x88 / 0x03; when it is
// reachable again, the broker catches up on a revocation it missed and
// disconnects that token's client within a second.
func TestSplitRolesOutageAndCatchUp(t *testing.T) {
	tokens, brk, px, admin, dataDir := splitRoles(t)
	cached := applyWith(t, admin, "dev/#", "R,W", time.Hour)
	revokedLater := applyWith(t, admin, "dev/#", "R,W", time.Hour)
	unseen := applyWith(t, admin, "dev/#", "R,W", time.Hour)
	dev := mustConnect5(t, brk.mqttAddr(), "dev", "d", cached)
	victim := mustConnect5(t, brk.mqttAddr(), "victim", "d", revokedLater)

	// Partition: the broker cannot reach the token service.
	px.setCut(true)
	if c := dev.publish("dev/during-outage", 1, false, "x"); c != 0 {
		t.Fatalf("connected client's publish during the outage: 0x%02x", c)
	}
	again := mustConnect5(t, brk.mqttAddr(), "dev-again", "d", cached) // cached positive answer
	again.c.Disconnect(&paho.Disconnect{})
	if _, code := connect5(t, brk.mqttAddr(), "unseen", "d", unseen); code != 0x88 {
		t.Fatalf("never-seen token during the outage: 0x%02x, want 0x88", code)
	}
	if _, code := connect3(t, brk.mqttAddr(), "unseen3", "d", unseen); code != 0x03 {
		t.Fatalf("never-seen token during the outage (v3.1.1): 0x%02x, want 0x03", code)
	}
	// Revoked while the broker cannot hear it.
	if _, err := admin.RevokeToken(context.Background(), "mqtt-local", revokedLater); err != nil {
		t.Fatal(err)
	}
	select {
	case <-victim.closed:
		t.Fatal("the broker heard a revocation through a cut link")
	default:
	}

	// The token service process dies and comes back on the same data dir.
	tokens.kill()
	tokens2 := startTokenmq(t, "--config", writeConfig(t, "access_keys:\n  - {id: "+brokerKeyID+", secret: "+brokerKeySecret+", role: broker}\n"),
		"--role", "tokens", "--api-addr", "127.0.0.1:0", "--data-dir", dataDir)
	px.retarget(tokens2.apiURL[len("http://"):])
	restored := time.Now()
	px.setCut(false)
	if r := victim.waitClosed(3 * time.Second); r != 0x98 {
		t.Fatalf("victim DISCONNECT 0x%02x, want 0x98", r)
	}
	if d := time.Since(restored); d > time.Second {
		t.Fatalf("caught up %v after the link came back", d)
	}
	// Validation resumes: the unseen token now gets in; the revoked one does not.
	mustConnect5(t, brk.mqttAddr(), "unseen-after", "d", unseen)
	if _, code := connect5(t, brk.mqttAddr(), "victim-again", "d", revokedLater); code != 0x86 {
		t.Fatalf("revoked token after catch-up: 0x%02x, want 0x86", code)
	}
	select {
	case <-dev.closed:
		t.Fatal("a client with a valid token was disconnected by the outage")
	default:
	}
}
