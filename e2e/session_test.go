package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/tokenmq/tokenmq/api"
	"github.com/tokenmq/tokenmq/config"
	"github.com/tokenmq/tokenmq/internal/testkit"
	"github.com/tokenmq/tokenmq/tokenauth"
	"github.com/tokenmq/tokenmq/tokenmqtest"
)

// invalidNotice decodes a $SYS/tokenInvalidNotice payload.
func invalidNotice(t *testing.T, m message) (code int, typ string) {
	t.Helper()
	var n struct {
		Code int    `json:"code"`
		Type string `json:"type"`
	}
	if err := json.Unmarshal([]byte(m.payload), &n); err != nil {
		t.Fatalf("notice %q: %v", m.payload, err)
	}
	return n.Code, n.Type
}

// SPEC §3.4: the expiry notice, renewal by $SYS/uploadToken keeping the
// client past its first token's expiry, and the upload never routed.
// On tokenmq's own broker it runs on tokenmqtest with the clock advanced:
// production's 5-minute notice and a one-hour token, in milliseconds.
// (TestMosquittoPlugin/RenewalKeepsClientAlive runs testRenewalKeepsClientAlive
// in real time.)
func TestRenewalKeepsClientAlive(t *testing.T) {
	s := tokenmqtest.Start(t, tokenmqtest.WithClock())
	watcher := mustConnect5(t, s.MQTT, "watcher", "w", s.MustApply(t, 24*time.Hour, "R", "#", "$SYS/#"))
	watcher.subscribe("#", 1)
	watcher.subscribe("$SYS/#", 1)

	first := s.MustApply(t, time.Hour, "R,W", "dev/#")
	firstExp := s.Now().Add(time.Hour)
	dev := mustConnect5(t, s.MQTT, "dev", "d", first)
	s.Advance(55*time.Minute - time.Millisecond)
	dev.routed("dev/fence")
	for _, m := range dev.received() {
		if m.topic == "$SYS/tokenExpireNotice" {
			t.Fatalf("expire notice before its time: %q", m.payload)
		}
	}
	s.Advance(time.Millisecond)
	notice := dev.waitMessage("$SYS/tokenExpireNotice", 2*time.Second)
	var n struct {
		ExpireTime int64  `json:"expireTime"`
		Type       string `json:"type"`
	}
	if err := json.Unmarshal([]byte(notice.payload), &n); err != nil || n.Type != "RW" || n.ExpireTime != firstExp.UnixMilli() {
		t.Fatalf("expire notice %q: %+v, %v", notice.payload, n, err)
	}

	second := s.MustApply(t, time.Hour, "R,W", "dev/#")
	if c := dev.publish("$SYS/uploadToken", 1, false, fmt.Sprintf(`{"token":%q,"type":"RW"}`, second)); c != 0 {
		t.Fatalf("uploadToken PUBACK 0x%02x, want 0x00", c)
	}
	if e, err := s.WaitEvent(2*time.Second, func(e tokenauth.Event) bool { return e.Kind == "renewal" }); err != nil || e.Result != "renewed" {
		t.Fatalf("renewal: %+v, %v", e, err)
	}
	s.Advance(10 * time.Minute) // well past the first token's expiry
	renewedAndQuiet(t, dev, watcher, second)
	// Without the renewal the second token's expiry ends it, on the clock too.
	s.Advance(time.Hour)
	if r := dev.waitClosed(2 * time.Second); r != 0xA0 {
		t.Fatalf("DISCONNECT 0x%02x at the second token's expiry, want 0xA0", r)
	}
}

func testRenewalKeepsClientAlive(t *testing.T, e *env) {
	watcher := mustConnect5(t, e.mqtt, "watcher", "w", e.apply("#,$SYS/#", "R", time.Hour))
	watcher.subscribe("#", 1)
	watcher.subscribe("$SYS/#", 1)

	first := e.apply("dev/#", "R,W", 2*time.Second)
	firstExp := time.Now().Add(2 * time.Second)
	dev := mustConnect5(t, e.mqtt, "dev", "d", first)
	notice := dev.waitMessage("$SYS/tokenExpireNotice", 3*time.Second)
	var n struct {
		ExpireTime int64  `json:"expireTime"`
		Type       string `json:"type"`
	}
	if err := json.Unmarshal([]byte(notice.payload), &n); err != nil || n.Type != "RW" || abs(n.ExpireTime-firstExp.UnixMilli()) > 1000 {
		t.Fatalf("expire notice %q: %+v, %v", notice.payload, n, err)
	}

	second := e.apply("dev/#", "R,W", time.Hour)
	upload := fmt.Sprintf(`{"token":%q,"type":"RW"}`, second)
	if c := dev.publish(e.uploadTopic(), 1, false, upload); c != 0 {
		t.Fatalf("uploadToken PUBACK 0x%02x, want 0x00", c)
	}
	// Well past the first token's expiry the client is still connected and working.
	testkit.WaitFor(t, 5*time.Second, "the first token's expiry to pass", func() bool { return time.Now().After(firstExp.Add(time.Second)) })
	renewedAndQuiet(t, dev, watcher, second)
}

// renewedAndQuiet checks, past the first token's expiry, that a client
// that renewed with second still publishes and was not disconnected, and
// that the upload reached no subscriber.
func renewedAndQuiet(t *testing.T, dev, watcher *client5, second string) {
	t.Helper()
	if c := dev.publish("dev/alive", 1, false, "yes"); c != 0 {
		t.Fatalf("publish after the first token expired: 0x%02x", c)
	}
	watcher.waitMessage("dev/alive", 5*time.Second)
	select {
	case <-dev.closed:
		t.Fatal("renewed client was disconnected")
	default:
	}
	for _, m := range watcher.received() {
		if strings.Contains(m.payload, second) || strings.Contains(m.topic, "uploadToken") {
			t.Fatalf("the uploaded token reached a subscriber: %+v", m)
		}
	}
	for _, m := range dev.received() {
		if m.topic == "$SYS/tokenInvalidNotice" {
			t.Fatalf("renewed client got %q", m.payload)
		}
	}
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// SPEC §3.4: expiry without renewal: notice code 2 and DISCONNECT 0xA0
// within a second (v5); the socket closes (v3.1.1).
func TestExpiryDisconnects(t *testing.T) {
	testExpiryDisconnects(t, startEnv(t, shortTTL, withNotice(0)))
}

func testExpiryDisconnects(t *testing.T, e *env) {
	tok := e.apply("dev/#", "R,W", 1500*time.Millisecond)
	exp := time.Now().Add(1500 * time.Millisecond)
	dev := mustConnect5(t, e.mqtt, "dev", "d", tok)
	dev3, _ := connect3(t, e.mqtt, "dev3", "d", tok)
	reason := dev.waitClosed(5 * time.Second)
	if late := time.Since(exp); late > time.Second {
		t.Fatalf("disconnected %v after expiry", late)
	}
	if want := e.kicked5(0xA0); reason != want {
		t.Fatalf("DISCONNECT reason 0x%02x, want 0x%02x", reason, want)
	}
	code, typ := invalidNotice(t, dev.waitMessage("$SYS/tokenInvalidNotice", time.Second))
	if code != 2 || typ != "RW" {
		t.Fatalf("invalid notice code %d type %q, want 2 RW", code, typ)
	}
	dev3.waitLost(2 * time.Second)
	if late := time.Since(exp); late > 2*time.Second {
		t.Fatalf("v3.1.1 client closed %v after expiry", late)
	}
}

// SPEC §3.5: revocation disconnects within a second with 0x98 and code 3.
func TestRevocationDisconnects(t *testing.T) { testRevocationDisconnects(t, startEnv(t)) }

func testRevocationDisconnects(t *testing.T, e *env) {
	tok := e.apply("dev/#", "R,W", time.Hour)
	other := e.apply("dev/#", "R,W", time.Hour)
	apsara := "Token|" + adminID + "|mqtt-local"
	devs := []*client5{
		mustConnect5(t, e.mqtt, "dev-plain", "d", tok),
		mustConnect5(t, e.mqtt, "dev-apsara", apsara, "R|"+tok+"|W|"+other),
	}
	bystander := mustConnect5(t, e.mqtt, "bystander", "b", other)
	dev3, _ := connect3(t, e.mqtt, "dev3", "d", tok)
	start := time.Now()
	e.revoke(tok)
	for i, d := range devs {
		if r := d.waitClosed(2 * time.Second); r != 0x98 {
			t.Fatalf("client %d: DISCONNECT 0x%02x, want 0x98", i, r)
		}
		code, typ := invalidNotice(t, d.waitMessage("$SYS/tokenInvalidNotice", time.Second))
		if want := []string{"RW", "R"}[i]; code != 3 || typ != want {
			t.Fatalf("client %d: notice code %d type %q, want 3 %s", i, code, typ, want)
		}
	}
	dev3.waitLost(2 * time.Second)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("revocation took %v to disconnect everyone", d)
	}
	// The token is refused from now on; the other token's client stays.
	if _, code := connect5(t, e.mqtt, "again", "d", tok); code != e.refused5(0x86) {
		t.Fatalf("reconnect with the revoked token: 0x%02x, want 0x%02x", code, e.refused5(0x86))
	}
	if c := bystander.publish("dev/x", 1, false, "still here"); c != 0 {
		t.Fatalf("bystander publish: 0x%02x", c)
	}
}

func TestInvalidRenewalDisconnects(t *testing.T) { testInvalidRenewalDisconnects(t, startEnv(t)) }

func testInvalidRenewalDisconnects(t *testing.T, e *env) {
	for _, payload := range []string{
		`{"token":"not-a-token","type":"RW"}`,
		`{"token":"` + strings.Repeat("A", 82) + `","type":"R"}`,
		`{"token":"x","type":"RWX"}`,
		`not json`,
	} {
		dev := mustConnect5(t, e.mqtt, "dev", "d", e.apply("dev/#", "R,W", time.Hour))
		dev.publish(e.uploadTopic(), 0, false, payload)
		dev.waitClosed(2 * time.Second)
		code, _ := invalidNotice(t, dev.waitMessage("$SYS/tokenInvalidNotice", time.Second))
		if code != 1 {
			t.Fatalf("%s: notice code %d, want 1", payload, code)
		}
	}
	// A valid token of a narrower type than asked for is invalid for it.
	dev := mustConnect5(t, e.mqtt, "dev", "d", e.apply("dev/#", "R,W", time.Hour))
	rOnly := e.apply("dev/#", "R", time.Hour)
	want := byte(0x87)
	if e.mosq != nil {
		want = 0 // Mosquitto acknowledges every $CONTROL publish with success
	}
	if c := dev.publish(e.uploadTopic(), 1, false, fmt.Sprintf(`{"Token":%q,"type":"RW"}`, rOnly)); c != want {
		t.Fatalf("invalid renewal PUBACK 0x%02x, want 0x%02x", c, want)
	}
	if r := dev.waitClosed(2 * time.Second); r != e.kicked5(0x87) {
		t.Fatalf("invalid renewal DISCONNECT 0x%02x, want 0x%02x", r, e.kicked5(0x87))
	}
}

// A renewal with narrower resources removes the subscriptions they no
// longer cover, and deliveries follow the new rights.
func TestRenewalPrunesSubscriptions(t *testing.T) { testRenewalPrunesSubscriptions(t, startEnv(t)) }

func testRenewalPrunesSubscriptions(t *testing.T, e *env) {
	pub := mustConnect5(t, e.mqtt, "pub", "p", e.apply("#", "W", time.Hour))
	dev := mustConnect5(t, e.mqtt, "dev", "d", e.apply("a/#,b/#", "R", time.Hour))
	for _, f := range []string{"a/#", "b/+"} {
		if c := dev.subscribe(f, 1); c != 1 {
			t.Fatalf("subscribe %s: 0x%02x", f, c)
		}
	}
	// Deliveries on both before the renewal (a broker may have cached
	// those decisions: Mosquitto's plugin does).
	pub.publish("b/x", 1, false, "before")
	pub.publish("a/x", 1, false, "before")
	dev.waitMessage("b/x", 5*time.Second)
	narrower := e.apply("a/#", "R", time.Hour)
	if c := dev.publish(e.uploadTopic(), 1, false, fmt.Sprintf(`{"token":%q,"type":"R"}`, narrower)); c != 0 {
		t.Fatalf("renewal: 0x%02x", c)
	}
	pub.publish("b/x", 1, false, "after")
	pub.publish("a/x", 1, false, "after")
	testkit.WaitFor(t, 5*time.Second, "a/x after the renewal", func() bool {
		return slices.ContainsFunc(dev.received(), func(m message) bool { return m.topic == "a/x" && m.payload == "after" })
	})
	neverReceived(t, dev.received(), func(m message) bool { return m.topic == "b/x" && m.payload == "after" })
	if c := dev.subscribe("b/+", 1); c != 0x87 {
		t.Fatalf("subscribe b/+ after renewal: 0x%02x, want 0x87", c)
	}
}

// Mochi would wait forever for a CONNECT; tokenmq closes the socket.
func TestSilentSocketClosed(t *testing.T) {
	e := startEnv(t, func(c *config.Config) { c.Broker.ConnectTimeout = 300 * time.Millisecond })
	conn, err := net.Dial("tcp", e.mqtt)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatal("read a byte from a broker that was sent nothing")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("silent socket closed after %v, want about 300ms", d)
	}
}

// One test with the real defaults: ApsaraMQ's 60-second minimum TTL and the
// 5-minute notice (so the notice comes at once), expiry at 60 s, disconnect
// within a second after it. It runs in parallel with the rest.
func TestDefaultMinimumTTLEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("takes a minute")
	}
	t.Parallel()
	e := startEnv(t)
	exp := time.Now().Add(60 * time.Second)
	tok := e.apply("dev/#", "R,W", 60*time.Second)
	if _, err := e.api.ApplyToken(context.Background(), api.ApplyTokenRequest{InstanceID: "mqtt-local",
		Resources: []string{"dev/#"}, Actions: "R", ExpireTime: time.Now().Add(59 * time.Second)}); err == nil {
		t.Fatal("a 59-second token was issued")
	}
	dev := mustConnect5(t, e.mqtt, "dev", "d", tok)
	dev.waitMessage("$SYS/tokenExpireNotice", 5*time.Second) // within the 5-minute notice window at once
	if r := dev.waitClosed(70 * time.Second); r != 0xA0 {
		t.Fatalf("DISCONNECT 0x%02x, want 0xA0", r)
	}
	if early := time.Until(exp); early > 100*time.Millisecond {
		t.Fatalf("disconnected %v before expiry", early)
	}
	if late := time.Since(exp); late > time.Second {
		t.Fatalf("disconnected %v after expiry", late)
	}
}

// A resumed session (clean start off) inherits its subscriptions, but gets
// only the topics the new connection's token covers.
func TestResumedSessionGetsOnlyNewTokensTopics(t *testing.T) {
	e := startEnv(t)
	pub := mustConnect5(t, e.mqtt, "pub", "p", e.apply("#", "W", time.Hour))
	persistent := func(c *paho.Connect) {
		c.CleanStart = false
		exp := uint32(300)
		c.Properties = &paho.ConnectProperties{SessionExpiryInterval: &exp}
	}
	wide := mustConnect5(t, e.mqtt, "sess", "d", e.apply("a/#,b/#", "R", time.Hour), persistent)
	wide.subscribe("a/+", 1)
	wide.subscribe("b/+", 1)
	wide.c.Disconnect(&paho.Disconnect{})
	<-wide.c.Done()

	narrow := mustConnect5(t, e.mqtt, "sess", "d", e.apply("a/#", "R", time.Hour), persistent)
	pub.publish("b/x", 1, false, "must not arrive")
	pub.publish("a/x", 1, false, "arrives")
	narrow.waitMessage("a/x", 5*time.Second)
	neverReceived(t, narrow.received(), func(m message) bool { return m.topic == "b/x" })
}

// A client disconnected for revocation or expiry does not get its Will
// published: the token no longer grants anything.
func TestNoWillAfterKick(t *testing.T) { testNoWillAfterKick(t, startEnv(t, shortTTL)) }

func testNoWillAfterKick(t *testing.T, e *env) {
	watcher := mustConnect5(t, e.mqtt, "watcher", "w", e.apply("#", "R", time.Hour))
	watcher.subscribe("#", 1)
	will := func(topic string) func(*paho.Connect) {
		return func(c *paho.Connect) {
			c.WillMessage = &paho.WillMessage{Topic: topic, Payload: []byte("gone"), QoS: 1}
		}
	}
	revokedTok := e.apply("dev/#", "R,W", time.Hour)
	revoked := mustConnect5(t, e.mqtt, "revoked", "d", revokedTok, will("dev/revoked/status"))
	expiring := mustConnect5(t, e.mqtt, "expiring", "d", e.apply("dev/#", "R,W", time.Second), will("dev/expired/status"))
	e.revoke(revokedTok)
	revoked.waitClosed(2 * time.Second)
	expiring.waitClosed(3 * time.Second)
	// A normal abnormal end still publishes its Will: the marker that the watcher is listening.
	conn, err := net.Dial("tcp", e.mqtt)
	if err != nil {
		t.Fatal(err)
	}
	mustConnect5Over(t, conn, "marker", "d", e.apply("dev/#", "R,W", time.Hour), will("dev/marker/status"))
	conn.Close()
	watcher.waitMessage("dev/marker/status", 5*time.Second)
	neverReceived(t, watcher.received(), func(m message) bool {
		return m.topic == "dev/revoked/status" || m.topic == "dev/expired/status"
	})
}

// Issue 7: MQTT 5 re-authentication with an AUTH packet (reason 0x19,
// method "tokenmq"), the token as CONNECT Authentication Data, and the
// expiry notice's user properties for such clients.
func TestMQTT5ReAuthentication(t *testing.T) {
	testMQTT5ReAuthentication(t, startEnv(t, shortTTL, withNotice(1500*time.Millisecond)))
}

func testMQTT5ReAuthentication(t *testing.T, e *env) {
	first := e.apply("dev/#", "R,W", 2*time.Second)
	firstExp := time.Now().Add(2 * time.Second)
	byMethod := func(c *paho.Connect) {
		c.Properties = &paho.ConnectProperties{AuthMethod: tokenauth.AuthMethod, AuthData: []byte(first), RequestProblemInfo: true}
	}
	dev := mustConnect5(t, e.mqtt, "dev", "", "", byMethod) // no password: the token rides in Authentication Data
	notice := dev.waitMessage("$SYS/tokenExpireNotice", 3*time.Second)
	if notice.props["expireTime"] == "" || notice.props["type"] != "RW" {
		t.Fatalf("expire notice user properties %v", notice.props)
	}

	second := e.apply("dev/#", "R,W", time.Hour)
	ctx := ctxTimeout(t, 5*time.Second)
	ar, err := dev.c.Authenticate(ctx, &paho.Auth{ReasonCode: 0x19, Properties: &paho.AuthProperties{
		AuthMethod: tokenauth.AuthMethod, AuthData: []byte(second)}})
	if err != nil || ar == nil || !ar.Success {
		t.Fatalf("re-authentication: %+v, %v", ar, err)
	}
	testkit.WaitFor(t, 5*time.Second, "the first token's expiry to pass", func() bool { return time.Now().After(firstExp.Add(time.Second)) })
	if c := dev.publish("dev/alive", 1, false, "yes"); c != 0 {
		t.Fatalf("publish after the first token expired: 0x%02x", c)
	}

	// An invalid token in AUTH ends the connection, as an invalid renewal does.
	ctx = ctxTimeout(t, 5*time.Second)
	dev.c.Authenticate(ctx, &paho.Auth{ReasonCode: 0x19, Properties: &paho.AuthProperties{AuthMethod: tokenauth.AuthMethod, AuthData: []byte("forged")}})
	// Mosquitto 2.0.11 answers a refused re-authentication with a CONNACK
	// 0x87 (a bug, fixed in 2.0.15: DISCONNECT 0x87) and closes.
	if r := dev.waitClosed(3 * time.Second); r != 0x87 && e.mosq == nil {
		t.Fatalf("invalid re-authentication: DISCONNECT 0x%02x, want 0x87", r)
	}
	// Another authentication method is refused at CONNECT.
	if _, code := connect5(t, e.mqtt, "other", "", "", func(c *paho.Connect) {
		c.Properties = &paho.ConnectProperties{AuthMethod: "SCRAM-SHA-1", AuthData: []byte("x")}
	}); code != 0x8C {
		t.Fatalf("other method: CONNACK 0x%02x, want 0x8C", code)
	}
}
