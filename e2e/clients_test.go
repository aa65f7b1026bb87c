package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/api"
	"github.com/tokenmq/tokenmq/internal/testkit"
)

// Clients admin (SPEC §2.2 ListClients / KickClient) with real clients.

// listClients returns every connection ListClients reports (following
// NextToken with pages of size).
func listClients(t *testing.T, c *api.Client, tokenID, clientID string, size int) []api.ClientInfo {
	t.Helper()
	var all []api.ClientInfo
	next := ""
	for {
		r, err := c.ListClients(context.Background(), "mqtt-local", tokenID, clientID, size, next)
		if err != nil {
			t.Fatalf("ListClients: %v", err)
		}
		all = append(all, r.Clients...)
		if next = r.NextToken; next == "" {
			if r.TotalCount != len(all) && size >= len(all) {
				t.Fatalf("TotalCount %d, %d listed", r.TotalCount, len(all))
			}
			return all
		}
		if len(r.Clients) != size {
			t.Fatalf("a page before the last has %d connections, want %d", len(r.Clients), size)
		}
	}
}

func clientIDs(cs []api.ClientInfo) []string {
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.ClientId)
	}
	return ids
}

// waitListed waits until ListClients names exactly ids (sorted).
func waitListed(t *testing.T, c *api.Client, ids ...string) []api.ClientInfo {
	t.Helper()
	var got []api.ClientInfo
	testkit.WaitFor(t, 5*time.Second, "ListClients to list "+strings.Join(ids, ","), func() bool {
		got = listClients(t, c, "", "", 100)
		return slices.Equal(clientIDs(got), ids)
	})
	return got
}

func tokenIDOf(t *testing.T, c *api.Client, tok string) string {
	t.Helper()
	q, err := c.QueryToken(context.Background(), "mqtt-local", tok)
	if err != nil || !q.TokenStatus {
		t.Fatalf("QueryToken: %v %+v", err, q)
	}
	return q.TokenId
}

func TestClientsListAndKick(t *testing.T) {
	e := startEnv(t)
	tokA := e.apply("dev/#", "R,W", time.Hour)
	tokB := e.apply("other/#", "R,W", time.Hour)
	idA, idB := tokenIDOf(t, e.api, tokA), tokenIDOf(t, e.api, tokB)
	before := time.Now().Add(-time.Second)

	pump1 := mustConnect5(t, e.mqtt, "pump-1", "d", tokA, persistent5)
	if c := pump1.subscribe("dev/cmd", 1); c != 1 {
		t.Fatalf("subscribe: 0x%02x", c)
	}
	pump2, code := connect3(t, e.mqtt, "pump-2", "d", tokB)
	if pump2 == nil {
		t.Fatalf("v3.1.1 connect: 0x%02x", code)
	}
	watch := mustConnect5(t, e.mqtt, "watch", "d", tokA)

	got := waitListed(t, e.api, "pump-1", "pump-2", "watch")
	p1, p2 := got[0], got[1]
	if p1.ProtocolVersion != 5 || !p1.Persistent || !slices.Equal(p1.TokenIds, []string{idA}) || p1.RemoteAddress == "" ||
		p1.BrokerId == "" || p1.ConnectedSince < before.UnixMilli() || p1.ConnectedSince > time.Now().UnixMilli() {
		t.Fatalf("pump-1 listed as %+v", p1)
	}
	if p2.ProtocolVersion != 4 || p2.Persistent || !slices.Equal(p2.TokenIds, []string{idB}) || p2.BrokerId != p1.BrokerId {
		t.Fatalf("pump-2 listed as %+v", p2)
	}
	if ids := clientIDs(listClients(t, e.api, idA, "", 100)); !slices.Equal(ids, []string{"pump-1", "watch"}) {
		t.Fatalf("TokenId filter: %v", ids)
	}
	if ids := clientIDs(listClients(t, e.api, "", "pump-2", 100)); !slices.Equal(ids, []string{"pump-2"}) {
		t.Fatalf("ClientId filter: %v", ids)
	}
	if ids := clientIDs(listClients(t, e.api, idB, "watch", 100)); len(ids) != 0 {
		t.Fatalf("both filters: %v", ids)
	}
	if ids := clientIDs(listClients(t, e.api, "", "", 1)); !slices.Equal(ids, []string{"pump-1", "pump-2", "watch"}) {
		t.Fatalf("pages of one: %v", ids)
	}

	// A kick: DISCONNECT 0x98 within a second, and the session is gone.
	start := time.Now()
	r, err := e.api.KickClient(context.Background(), "mqtt-local", "pump-1")
	if err != nil || r.Connections != 1 {
		t.Fatalf("KickClient: %v %+v", err, r)
	}
	if rc := pump1.waitClosed(2 * time.Second); rc != 0x98 {
		t.Fatalf("kicked v5 client: DISCONNECT 0x%02x, want 0x98", rc)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("kick took %v", d)
	}
	again := mustConnect5(t, e.mqtt, "pump-1", "d", tokA, persistent5)
	if again.present() {
		t.Fatal("the kicked client's session was kept (session present)")
	}
	if c := watch.publish("dev/cmd", 1, false, "after-kick"); c != 0 {
		t.Fatalf("publish: 0x%02x", c)
	}
	again.routed("dev/fence")
	neverReceived(t, again.received(), func(m message) bool { return m.topic == "dev/cmd" })

	// MQTT 3.1.1 has no server DISCONNECT: the socket closes.
	if _, err := e.api.KickClient(context.Background(), "mqtt-local", "pump-2"); err != nil {
		t.Fatal(err)
	}
	pump2.waitLost(2 * time.Second)
	waitListed(t, e.api, "pump-1", "watch")
	if c := watch.publish("dev/x", 1, false, "still connected"); c != 0 {
		t.Fatalf("the client that was not kicked: publish 0x%02x", c)
	}
}

// Every broker under test lists its clients and carries out a kick: MQTT 5
// gets DISCONNECT 0x98, MQTT 3.1.1 a closed socket; others stay.
func TestKickClient(t *testing.T) { testKickClient(t, startEnv(t)) }

func testKickClient(t *testing.T, e *env) {
	tok := e.apply("dev/#", "R,W", time.Hour)
	k5 := mustConnect5(t, e.mqtt, "kick-5", "d", tok)
	k3, code := connect3(t, e.mqtt, "kick-3", "d", tok)
	if k3 == nil {
		t.Fatalf("v3.1.1 connect: 0x%02x", code)
	}
	stays := mustConnect5(t, e.mqtt, "stays", "d", tok)
	waitListed(t, e.api, "kick-3", "kick-5", "stays")
	start := time.Now()
	for _, id := range []string{"kick-5", "kick-3"} {
		if r, err := e.api.KickClient(context.Background(), "mqtt-local", id); err != nil || r.Connections != 1 {
			t.Fatalf("KickClient %s: %+v %v", id, r, err)
		}
	}
	if rc := k5.waitClosed(2 * time.Second); rc != 0x98 {
		t.Fatalf("kicked v5 client: DISCONNECT 0x%02x, want 0x98", rc)
	}
	k3.waitLost(2 * time.Second)
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("kicks took %v", d)
	}
	if c := stays.publish("dev/x", 1, false, "still here"); c != 0 {
		t.Fatalf("the client not kicked: publish 0x%02x", c)
	}
	waitListed(t, e.api, "stays")
}

// A kick of a client that is offline discards the session a broker keeps
// for it: what it subscribed to and what was queued for it are gone.
func TestKickDiscardsAnOfflineSession(t *testing.T) {
	e := startEnv(t)
	tok := e.apply("dev/#", "R,W", time.Hour)
	sleeper := mustConnect5(t, e.mqtt, "sleeper", "d", tok, persistent5)
	if c := sleeper.subscribe("dev/s", 1); c != 1 {
		t.Fatalf("subscribe: 0x%02x", c)
	}
	sleeper.close()
	pub := mustConnect5(t, e.mqtt, "pub", "d", tok)
	if c := pub.publish("dev/s", 1, false, "queued-before-kick"); c != 0 {
		t.Fatalf("publish: 0x%02x", c)
	}
	r, err := e.api.KickClient(context.Background(), "mqtt-local", "sleeper")
	if err != nil || r.Connections != 0 {
		t.Fatalf("KickClient: %v %+v", err, r)
	}
	testkit.WaitFor(t, 2*time.Second, "the offline session to be discarded", func() bool {
		return strings.Contains(e.logs.String(), "offline session discarded")
	})
	if c := pub.publish("dev/s", 1, false, "after-kick"); c != 0 {
		t.Fatalf("publish: 0x%02x", c)
	}
	back := mustConnect5(t, e.mqtt, "sleeper", "d", tok, persistent5)
	if back.present() {
		t.Fatal("session present after the kick")
	}
	back.routed("dev/fence")
	neverReceived(t, back.received(), func(m message) bool { return m.topic == "dev/s" })
}

func TestClientsAdminBadInput(t *testing.T) {
	e := startEnv(t)
	for _, tc := range []struct {
		action string
		ps     map[string]string
		code   string
	}{
		{"KickClient", map[string]string{"InstanceId": "mqtt-local"}, "InvalidParameter.ClientId"},
		{"KickClient", map[string]string{"InstanceId": "mqtt-local", "ClientId": "a\x00b"}, "InvalidParameter.ClientId"},
		{"KickClient", map[string]string{"InstanceId": "elsewhere", "ClientId": "x"}, "InstancePermissionCheckFailed"},
		{"ListClients", map[string]string{"InstanceId": "mqtt-local", "TokenId": "nope"}, "InvalidParameter.TokenId"},
		{"ListClients", map[string]string{"InstanceId": "mqtt-local", "PageSize": "101"}, "InvalidParameter.PageSize"},
		{"ListClients", map[string]string{"InstanceId": "mqtt-local", "NextToken": "%%%"}, "InvalidParameter.NextToken"},
		{"ListClients", map[string]string{}, "InvalidParameter.InstanceId"},
		{"ReportClients", map[string]string{"InstanceId": "mqtt-local", "BrokerId": "b", "Seq": "0"}, "InvalidParameter.Seq"},
		{"ReportClients", map[string]string{"InstanceId": "mqtt-local", "BrokerId": "b", "Seq": "1", "Full": "true",
			"Connected": `[{"Conn":1,"ClientId":"x","ProtocolVersion":9}]`}, "InvalidParameter.Connected"},
	} {
		err := e.api.Call(context.Background(), tc.action, tc.ps, nil)
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Code != tc.code || ae.Status != 400 {
			t.Errorf("%s %v: %v, want 400 %s", tc.action, tc.ps, err, tc.code)
		}
	}
}

// Split roles: the broker is another process; it reports its connections
// to the token service and hears kicks on the revocation feed it follows.
// The command line lists and kicks.
func TestSplitRolesClientsAdmin(t *testing.T) {
	tokens, brk, _, admin, _ := splitRoles(t)
	tok := applyWith(t, admin, "dev/#", "R,W", time.Hour)
	dev := mustConnect5(t, brk.mqttAddr(), "dev-7", "d", tok)
	waitListed(t, admin, "dev-7")

	cli := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(binary, append(args, "--endpoint", tokens.apiURL)...)
		cmd.Env = append(os.Environ(), "TOKENMQ_ACCESS_KEY_ID="+adminID, "TOKENMQ_ACCESS_KEY_SECRET="+adminSecret)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("tokenmq %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	out := cli("clients", "list", "--token-id", tokenIDOf(t, admin, tok))
	if !strings.Contains(out, "dev-7") || !strings.Contains(out, "1 connection(s)") || !strings.Contains(out, "clean") {
		t.Fatalf("clients list:\n%s", out)
	}
	if out := cli("clients", "list", "--client-id", "nobody"); !strings.Contains(out, "0 connection(s)") {
		t.Fatalf("clients list --client-id nobody:\n%s", out)
	}
	start := time.Now()
	if out := cli("clients", "kick", "dev-7"); !strings.Contains(out, "1 connection(s) disconnected") {
		t.Fatalf("clients kick:\n%s", out)
	}
	if rc := dev.waitClosed(2 * time.Second); rc != 0x98 {
		t.Fatalf("DISCONNECT 0x%02x, want 0x98", rc)
	}
	if d := time.Since(start); d > 1500*time.Millisecond { // the command's own start is in it
		t.Fatalf("kick across processes took %v", d)
	}
	waitListed(t, admin)
	// The client reconnects after the kick: it stays.
	back := mustConnect5(t, brk.mqttAddr(), "dev-7", "d", tok)
	waitListed(t, admin, "dev-7")
	if c := back.publish("dev/x", 1, false, "still here"); c != 0 {
		t.Fatalf("publish after reconnecting: 0x%02x", c)
	}
}

// SPEC §4's bigger deployment: two token-service replicas on PostgreSQL,
// a broker on each. Either replica lists the connections of both brokers
// and kicks a client on the broker that follows the other replica.
func TestClusterClientsAdmin(t *testing.T) {
	c := startCluster(t, "api:\n  rate_limits: {apply_token: 0, query_token: 0, other: 0}\n")
	tok := applyWith(t, c.adminA, "dev/#", "R,W", time.Hour)
	onX := mustConnect5(t, c.brokerX.mqttAddr(), "on-x", "d", tok)
	onY := mustConnect5(t, c.brokerY.mqttAddr(), "on-y", "d", tok)
	for _, admin := range []*api.Client{c.adminA, c.adminB} {
		got := waitListed(t, admin, "on-x", "on-y")
		if got[0].BrokerId == got[1].BrokerId || got[0].BrokerId == "" {
			t.Fatalf("brokers %q and %q", got[0].BrokerId, got[1].BrokerId)
		}
	}
	start := time.Now()
	if _, err := c.adminA.KickClient(context.Background(), "mqtt-local", "on-y"); err != nil {
		t.Fatal(err)
	}
	if rc := onY.waitClosed(2 * time.Second); rc != 0x98 {
		t.Fatalf("DISCONNECT 0x%02x, want 0x98", rc)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("the kick reached the other replica's broker after %v", d)
	}
	waitListed(t, c.adminB, "on-x")
	if code := onX.publish("dev/x", 1, false, "still here"); code != 0 {
		t.Fatalf("the client on X: publish 0x%02x", code)
	}
}
