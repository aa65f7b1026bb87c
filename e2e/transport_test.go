package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tokenmq/tokenmq/config"
)

// wsClientConn is a net.Conn over a websocket client connection, one MQTT
// write per binary message, as browsers' MQTT.js sends them.
type wsClientConn struct {
	net.Conn
	ws *websocket.Conn
	r  io.Reader
}

func (c *wsClientConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			_, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (c *wsClientConn) Write(p []byte) (int, error) {
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsClientConn) Close() error { return c.ws.Close() }

func TestWebSocketListener(t *testing.T) {
	e := startEnv(t)
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
	ws, resp, err := d.Dial("ws://"+e.ws+"/mqtt", nil)
	if err != nil {
		t.Fatalf("websocket dial: %v", err)
	}
	if resp.Header.Get("Sec-Websocket-Protocol") != "mqtt" {
		t.Fatalf("subprotocol %q", resp.Header.Get("Sec-Websocket-Protocol"))
	}
	tok := e.apply("ws/#", "R,W", time.Hour)
	c := mustConnect5Over(t, &wsClientConn{Conn: ws.UnderlyingConn(), ws: ws}, "ws-client", "browser", tok)
	if code := c.subscribe("ws/+", 1); code != 1 {
		t.Fatalf("subscribe over websocket: 0x%02x", code)
	}
	if code := c.publish("ws/x", 1, false, "hi"); code != 0 {
		t.Fatalf("publish over websocket: 0x%02x", code)
	}
	c.waitMessage("ws/x", 5*time.Second)
	if code := c.publish("other", 1, false, "no"); code != 0x87 {
		t.Fatalf("denied publish over websocket: 0x%02x", code)
	}
	// A bad token over websocket gets the same CONNACK as over TCP.
	ws2, _, err := d.Dial("ws://"+e.ws+"/mqtt", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, code := connect5Over(t, &wsClientConn{Conn: ws2.UnderlyingConn(), ws: ws2}, "ws-bad", "b", "garbage"); code != 0x86 {
		t.Fatalf("bad token over websocket: 0x%02x", code)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tokenmq test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	kb, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile, pool
}

func TestTLSListener(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	e := startEnv(t, func(c *config.Config) { c.TLSAddr, c.TLSCert, c.TLSKey = "127.0.0.1:0", certFile, keyFile })
	conn, err := tls.Dial("tcp", e.srv.MQTTAddr("tls"), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("tls dial: %v", err)
	}
	c := mustConnect5Over(t, conn, "tls-client", "d", e.apply("t/#", "R,W", time.Hour))
	if code := c.publish("t/x", 1, false, "over tls"); code != 0 {
		t.Fatalf("publish over TLS: 0x%02x", code)
	}
}

// SPEC §1: SIGTERM-like shutdown sends MQTT 5 clients DISCONNECT 0x8B and
// /readyz goes 503. MQTT 3.1.1 has no server-to-client DISCONNECT: a 3.1.1
// client's connection is closed with nothing written (mosquitto_sub
// reported the 0xE0 it used to get as a protocol error).
func TestGracefulShutdown(t *testing.T) {
	e := startEnv(t)
	url := "http://" + e.srv.APIAddr().String()
	if s := httpGet(t, url+"/readyz"); s != 200 {
		t.Fatalf("/readyz %d before shutdown", s)
	}
	if s := httpGet(t, url+"/healthz"); s != 200 {
		t.Fatalf("/healthz %d", s)
	}
	tok := e.apply("x", "R", time.Hour)
	c := mustConnect5(t, e.mqtt, "c", "d", tok)
	code, v3, err := rawConnect(e.mqtt, "c3", "d", tok, 5*time.Second)
	if err != nil || code != 0 {
		t.Fatalf("3.1.1 connect: 0x%02x %v", code, err)
	}
	defer v3.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.srv.Shutdown(ctx) }()
	if r := c.waitClosed(5 * time.Second); r != 0x8B {
		t.Fatalf("DISCONNECT 0x%02x on shutdown, want 0x8B", r)
	}
	v3.SetDeadline(time.Now().Add(5 * time.Second))
	if rest, err := io.ReadAll(v3); len(rest) > 0 || isTimeout(err) {
		t.Fatalf("the 3.1.1 client was sent % x (err %v) on shutdown, want its connection closed with nothing written", rest, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}

// isTimeout reports whether err is a network timeout.
func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
