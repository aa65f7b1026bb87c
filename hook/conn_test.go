package hook

import (
	"log/slog"
	"net"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tokenmq/tokenmq/token"
)

// A session is found the same way whether the client's connection carries a
// slot (tokenmq's listeners) or not (Mochi's own, the inline client), and
// neither way finds one after the disconnect: the ACL then denies.
func TestSessionLookupWithAndWithoutSlot(t *testing.T) {
	v := &fakeValidator{grants: map[string]token.Grant{tok1: {TokenID: token.ID{7}, InstanceID: "inst",
		Actions: token.ActionReadWrite, Resources: []string{"fleet/+/telemetry"}, ExpireTime: time.Now().Add(time.Hour)}}}
	server := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler)})
	h, err := New(server, Config{InstanceID: "inst", Validator: v, Feed: nopFeed{}, AllowPlain: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		conn func() net.Conn
	}{
		{"slot", func() net.Conn { a, b := net.Pipe(); t.Cleanup(func() { a.Close(); b.Close() }); return WrapConn(a) }},
		{"plain conn", func() net.Conn { a, b := net.Pipe(); t.Cleanup(func() { a.Close(); b.Close() }); return a }},
		{"no conn", func() net.Conn { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := server.NewClient(tc.conn(), "tcp", "dev-"+tc.name, false)
			cl.Properties.ProtocolVersion = 5
			if h.OnConnectAuthenticate(cl, packets.Packet{}) || h.OnACLCheck(cl, "fleet/a/telemetry", false) {
				t.Fatal("a client that has not connected is let in")
			}
			pk := packets.Packet{Connect: packets.ConnectParams{Username: []byte("dev"), Password: []byte(tok1), PasswordFlag: true, UsernameFlag: true}}
			if err := h.OnConnect(cl, pk); err != nil {
				t.Fatalf("OnConnect: %v", err)
			}
			if !h.OnConnectAuthenticate(cl, pk) {
				t.Fatal("authenticated client refused")
			}
			for topic, want := range map[string]bool{"fleet/a/telemetry": true, "fleet/a/cmd": false, "fleet/+/telemetry": true, "fleet/#": false} {
				if got := h.OnACLCheck(cl, topic, false); got != want {
					t.Errorf("read %q = %v, want %v", topic, got, want)
				}
			}
			if !h.OnACLCheck(cl, "fleet/b/telemetry", true) || h.OnACLCheck(cl, "fleet/b/cmd", true) {
				t.Error("publish rights wrong")
			}
			if h.Sessions() != 1 {
				t.Errorf("Sessions() = %d, want 1", h.Sessions())
			}
			h.OnDisconnect(cl, nil, false)
			if h.OnACLCheck(cl, "fleet/a/telemetry", false) || h.OnACLCheck(cl, "fleet/a/telemetry", true) || h.OnConnectAuthenticate(cl, pk) {
				t.Fatal("a disconnected client keeps its rights")
			}
			if h.Sessions() != 0 {
				t.Errorf("Sessions() = %d after the disconnect, want 0", h.Sessions())
			}
		})
	}
}
