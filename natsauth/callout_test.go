package natsauth_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tokenmq/tokenmq/internal/natstest"
	"github.com/tokenmq/tokenmq/internal/testkit"
	"github.com/tokenmq/tokenmq/internal/tokentest"
	"github.com/tokenmq/tokenmq/natsauth"
	"github.com/tokenmq/tokenmq/token"
	"github.com/tokenmq/tokenmq/tokenauth"
)

const instance = "inst-a"

// env is a NATS cluster whose MQTT clients tokenmq authorizes.
type env struct {
	t       *testing.T
	svc     *tokentest.Service
	cluster *natstest.Cluster
	callout *natsauth.Callout
}

func logger() *slog.Logger {
	if os.Getenv("TOKENMQ_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// observer is a configured NATS user of the MQTT account (past the
// callout), to see what reaches NATS subjects.
var observer = natstest.StaticUser{Name: "observer", Password: "observer-pw"}

func startEnv(t *testing.T, nodes int) *env {
	t.Helper()
	e := &env{t: t}
	e.svc = tokentest.NewService(t, time.Time{}, token.ServiceConfig{Instances: []string{instance, "inst-b"}, MinTTL: time.Second, Now: time.Now})
	e.cluster = natstest.Start(t, natstest.Options{Nodes: nodes, Callout: true, StaticUsers: []natstest.StaticUser{observer}})
	e.callout = e.startCallout()
	return e
}

// startCallout starts a callout process: its own Authority, as a tokenmq
// serve process has.
func (e *env) startCallout() *natsauth.Callout {
	e.t.Helper()
	cache := tokenauth.DefaultCacheConfig()
	cache.StaleGrace = -1
	auth, err := tokenauth.New(tokenauth.Config{InstanceID: instance, Validator: e.svc, Feed: e.svc, Cache: cache,
		AllowPlain: true, FeedWait: time.Second, Logger: logger()})
	if err != nil {
		e.t.Fatal(err)
	}
	auth.Start()
	c, err := natsauth.Start(natsauth.Config{URL: e.cluster.URL(), User: natstest.AuthUser, Password: e.cluster.AuthPass,
		Issuer: e.cluster.Issuer, Account: natstest.MQTTAccount, SystemUser: natstest.SysUser, SystemPassword: e.cluster.SysPass,
		Authority: auth, Tokens: e.svc, Logger: logger()})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close(); auth.Close() })
	return c
}

func (e *env) apply(resources []string, actions token.Actions, ttl time.Duration, clientIDs ...string) string {
	e.t.Helper()
	tok, _, err := e.svc.Apply(context.Background(), token.ApplyRequest{InstanceID: instance, AccessKeyID: "ak", Resources: resources,
		Actions: actions, ExpireTime: time.Now().Add(ttl), ClientIDs: clientIDs})
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// Clients on different nodes exchange messages within their rights; a
// subscription the rights do not contain gets 0x80, a publish they do not
// cover is dropped (and acknowledged: NATS's behaviour) and the connection
// stays; the '$' topics a '#' does not cover stay out of reach.
func TestNATSRightsAcrossNodes(t *testing.T) {
	e := startEnv(t, 3)
	sub := natstest.MustDial(t, e.cluster.MQTT(0), "sub", e.apply([]string{"fleet/+/cmd", "fleet/d1/cmd/#", "probe"}, token.ActionRead, time.Hour))
	pub := natstest.MustDial(t, e.cluster.MQTT(1), "pub", e.apply([]string{"fleet/#", "probe"}, token.ActionWrite, time.Hour))
	spy := natstest.MustDial(t, e.cluster.MQTT(2), "spy", e.apply([]string{"#"}, token.ActionRead, time.Hour))
	for f, want := range map[string]byte{"fleet/+/cmd": 1, "fleet/d1/cmd": 1, "probe": 1, "fleet/#": 0x80, "fleet/d1/+": 0x80, "#": 0x80, "other": 0x80} {
		if got := sub.Subscribe(t, f, 1); got != want {
			t.Errorf("SUBACK for %s: 0x%02x, want 0x%02x", f, got, want)
		}
	}
	if got := spy.Subscribe(t, "#", 1); got != 1 {
		t.Fatalf("R # subscribing #: 0x%02x", got)
	}
	for f, want := range map[string]byte{"$SYS/#": 0x80, "$JS/API/#": 0x80, "$MQTT/sess/#": 0x80} {
		if got := spy.Subscribe(t, f, 0); got != want {
			t.Errorf("R # subscribing %s: 0x%02x, want 0x%02x", f, got, want)
		}
	}
	pub.Publish(t, "fleet/d1/cmd", 1, false, "to d1")
	pub.Publish(t, "fleet/d2/cmd", 0, false, "to d2")
	pub.Publish(t, "elsewhere/x", 1, false, "not allowed") // acknowledged, dropped
	pub.Publish(t, "$JS/API/STREAM/LIST", 1, false, "not allowed either")
	natstest.Fence(t, pub, sub, "probe")
	natstest.WaitPayloads(t, sub, "to d1", "to d2")
	natstest.Fence(t, pub, spy, "probe")
	for _, m := range spy.Received() {
		if m.Payload == "not allowed" || m.Payload == "not allowed either" {
			t.Fatalf("a publish outside W was delivered: %+v", m)
		}
	}
	if !pub.C.IsConnectionOpen() || !sub.C.IsConnectionOpen() {
		t.Fatal("a denied publish or subscribe closed the connection")
	}

	// A W '#' reaches no '$' subject: not the JetStream API, not $SYS, not
	// the MQTT sessions' own subjects. A NATS client of the account sees
	// every subject published in it.
	nc, err := nats.Connect(e.cluster.URL(), nats.UserInfo(observer.Name, observer.Password))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	seen := make(chan string, 100)
	topics := []string{"$JS/API/STREAM/NAMES", "$SYS/x", "$MQTT/sess/x", "$KV/x/y", "plain/after"}
	for _, topic := range topics {
		subj, _ := natsauth.Subject(topic, false)
		if _, err := nc.Subscribe(subj, func(m *nats.Msg) { seen <- m.Subject }); err != nil {
			t.Fatal(err)
		}
	}
	nc.Flush()
	all := natstest.MustDial(t, e.cluster.MQTT(1), "all", e.apply([]string{"#"}, token.ActionWrite, time.Hour))
	for _, topic := range topics {
		all.Publish(t, topic, 1, false, "x")
	}
	for subj := range seen {
		if subj == "plain.after" {
			break
		}
		t.Errorf("W # reached the NATS subject %s", subj)
	}
}

// Every refusal is answered (never a timeout) and NATS turns it into
// return code 5: a forged, expired, revoked token, one of another
// instance, one bound to other client IDs, none at all.
func TestNATSRefusals(t *testing.T) {
	e := startEnv(t, 1)
	addr := e.cluster.MQTT(0)
	good := e.apply([]string{"a/#"}, token.ActionReadWrite, time.Hour)
	revoked := e.apply([]string{"a/#"}, token.ActionReadWrite, time.Hour)
	if _, err := e.svc.Revoke(context.Background(), instance, revoked); err != nil {
		t.Fatal(err)
	}
	expiring := e.apply([]string{"a/#"}, token.ActionReadWrite, 1500*time.Millisecond)
	otherTok, _, err := e.svc.Apply(context.Background(), token.ApplyRequest{InstanceID: "inst-b", AccessKeyID: "ak", Resources: []string{"a/#"},
		Actions: token.ActionReadWrite, ExpireTime: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	bound := e.apply([]string{"a/#"}, token.ActionReadWrite, time.Hour, "dev-1")
	time.Sleep(1600 * time.Millisecond) // expiring has expired
	for name, c := range map[string]struct{ id, user, pw string }{
		"forged":          {"c1", "device", good[:len(good)-2] + "xx"},
		"expired":         {"c2", "device", expiring},
		"revoked":         {"c3", "device", revoked},
		"other instance":  {"c4", "device", otherTok},
		"bound elsewhere": {"dev-2", "device", bound},
		"no password":     {"c5", "device", ""},
	} {
		start := time.Now()
		if _, rc := natstest.Dial(t, addr, c.id, c.user, c.pw, true); rc != 5 {
			t.Errorf("%s: return code %d, want 5", name, rc)
		}
		if d := time.Since(start); d > 1500*time.Millisecond {
			t.Errorf("%s: refused after %v: the callout did not answer (NATS timed out)", name, d)
		}
	}
	if _, rc := natstest.Dial(t, addr, "dev-1", "device", bound, true); rc != 0 {
		t.Errorf("the bound client ID itself: return code %d", rc)
	}
	if s := e.callout.Stats(); s.Refused < 6 || s.Accepted < 1 {
		t.Errorf("stats %+v", s)
	}
}

// RevokeToken disconnects every client relying on the token, on every
// node; the others stay.
func TestNATSRevocationKicksOnEveryNode(t *testing.T) {
	e := startEnv(t, 3)
	tok := e.apply([]string{"a/#"}, token.ActionReadWrite, time.Hour)
	var victims []*natstest.Client
	for i := range 3 {
		victims = append(victims, natstest.MustDial(t, e.cluster.MQTT(i), fmt.Sprint("v", i), tok))
	}
	bystander := natstest.MustDial(t, e.cluster.MQTT(2), "bystander", e.apply([]string{"a/#"}, token.ActionReadWrite, time.Hour))
	testkit.WaitFor(t, 5*time.Second, "the callout to follow 4 connections", func() bool { return e.callout.Connections() >= 4 })
	start := time.Now()
	if _, err := e.svc.Revoke(context.Background(), instance, tok); err != nil {
		t.Fatal(err)
	}
	for i, v := range victims {
		select {
		case <-v.Lost:
			t.Logf("node %d: disconnected %v after the revocation", i+1, time.Since(start).Round(time.Millisecond))
		case <-time.After(5 * time.Second):
			t.Fatalf("node %d: still connected 5s after the revocation", i+1)
		}
	}
	if !bystander.C.IsConnectionOpen() {
		t.Fatal("a client with another token was disconnected")
	}
	if _, rc := natstest.Dial(t, e.cluster.MQTT(0), "v0", "device", tok, true); rc != 5 {
		t.Fatalf("reconnect with the revoked token: return code %d", rc)
	}
}

// A token's expiry ends the connection (tokenmq's timer, NATS's user
// expiry as the backstop).
func TestNATSExpiryDisconnects(t *testing.T) {
	e := startEnv(t, 1)
	c := natstest.MustDial(t, e.cluster.MQTT(0), "short", e.apply([]string{"a/#"}, token.ActionReadWrite, 2*time.Second))
	select {
	case <-c.Lost:
	case <-time.After(6 * time.Second):
		t.Fatal("still connected 4s after the token expired")
	}
}

// A callout that was down while a token was revoked catches up when it
// starts: it finds the clients the previous one admitted and disconnects
// those whose token is no longer valid; the others it follows from then on.
func TestNATSCalloutRestartCatchesUp(t *testing.T) {
	e := startEnv(t, 1)
	doomed := e.apply([]string{"a/#"}, token.ActionReadWrite, time.Hour)
	kept := e.apply([]string{"a/#"}, token.ActionReadWrite, time.Hour)
	c1 := natstest.MustDial(t, e.cluster.MQTT(0), "doomed", doomed)
	c2 := natstest.MustDial(t, e.cluster.MQTT(0), "kept", kept)
	e.callout.Close()
	if _, err := e.svc.Revoke(context.Background(), instance, doomed); err != nil {
		t.Fatal(err)
	}
	next := e.startCallout()
	select {
	case <-c1.Lost:
	case <-time.After(10 * time.Second):
		t.Fatal("the client of a token revoked while the callout was down is still connected")
	}
	if !c2.C.IsConnectionOpen() {
		t.Fatal("a client with a valid token was disconnected")
	}
	testkit.WaitFor(t, 5*time.Second, "the new callout to follow the kept client", func() bool { return next.Connections() == 1 })
	if _, err := e.svc.Revoke(context.Background(), instance, kept); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c2.Lost:
	case <-time.After(5 * time.Second):
		t.Fatal("a revocation after the restart did not reach a client admitted before it")
	}
}

// A retained message and a persistent session (CleanSession 0) survive
// the loss of a node: JetStream keeps them on three.
func TestNATSSessionAndRetainedSurviveNodeLoss(t *testing.T) {
	e := startEnv(t, 3)
	readTok := e.apply([]string{"fleet/#"}, token.ActionRead, time.Hour)
	writeTok := e.apply([]string{"fleet/#"}, token.ActionWrite, time.Hour)
	pub := natstest.MustDial(t, e.cluster.MQTT(0), "pub", writeTok)
	pub.Publish(t, "fleet/r", 1, true, "kept")
	sub, rc := natstest.Dial(t, e.cluster.MQTT(1), "dev", "device", readTok, false)
	if rc != 0 {
		t.Fatalf("connect: %d", rc)
	}
	if got := sub.Subscribe(t, "fleet/q", 1); got != 1 {
		t.Fatalf("SUBACK 0x%02x", got)
	}
	sub.C.Disconnect(100)
	pub.C.Disconnect(100)

	e.cluster.StopNode(0)
	e.cluster.WaitJetStream()
	testkit.WaitFor(t, 5*time.Second, "the callout to reconnect", e.callout.Connected)
	// Right after the loss, a node may still drop an MQTT connection before
	// its CONNACK (paho's 254) while JetStream settles; a device retries.
	pub2 := natstest.DialUntil(t, e.cluster.MQTT(2), "pub2", writeTok, true)
	pub2.Publish(t, "fleet/q", 1, false, "queued while offline")

	back := natstest.DialUntil(t, e.cluster.MQTT(2), "dev", readTok, false)
	natstest.WaitPayloads(t, back, "queued while offline")
	late := natstest.MustDial(t, e.cluster.MQTT(1), "late", readTok)
	late.Subscribe(t, "fleet/r", 1)
	natstest.WaitPayloads(t, late, "kept")

	// The session resumed with a token that does not cover it gets none
	// of it: NATS re-checks the stored subscriptions against the new
	// permissions.
	back.C.Disconnect(100)
	pub2.Publish(t, "fleet/q", 1, false, "second, for dev only")
	thief, rc := natstest.Dial(t, e.cluster.MQTT(1), "dev", "device", e.apply([]string{"other/#"}, token.ActionRead, time.Hour), false)
	if rc != 0 {
		t.Fatalf("thief connect: %d", rc)
	}
	thief.Subscribe(t, "other/fence", 1)
	fencer := natstest.MustDial(t, e.cluster.MQTT(1), "fencer", e.apply([]string{"other/fence"}, token.ActionWrite, time.Hour))
	natstest.Fence(t, fencer, thief, "other/fence")
	for _, m := range thief.Received() {
		if strings.HasPrefix(m.Topic, "fleet/") {
			t.Fatalf("a session resumed with a token without its rights got %+v", m)
		}
	}
}
