package tokenmqtest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/onsmqtt"
	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/tokenmq/tokenmq/tokenauth"
	"github.com/tokenmq/tokenmq/tokenmqtest"
)

// device is a paho.golang MQTT 5 client that records what it receives.
type device struct {
	c      *paho.Client
	mu     sync.Mutex
	msgs   []*paho.Publish
	got    chan *paho.Publish
	gone   chan *paho.Disconnect
	closed sync.Once
}

func dial(addr, clientID, password string, edit func(*paho.Connect)) (*device, *paho.Connack, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	d := &device{got: make(chan *paho.Publish, 100), gone: make(chan *paho.Disconnect, 1)}
	d.c = paho.NewClient(paho.ClientConfig{ClientID: clientID, Conn: packets.NewThreadSafeConn(conn),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			d.mu.Lock()
			d.msgs = append(d.msgs, pr.Packet)
			d.mu.Unlock()
			d.got <- pr.Packet
			return true, nil
		}},
		OnServerDisconnect: func(dp *paho.Disconnect) { d.gone <- dp },
	})
	cp := &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: true, UsernameFlag: true, Username: "device",
		PasswordFlag: true, Password: []byte(password)}
	if edit != nil {
		edit(cp)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ca, err := d.c.Connect(ctx, cp)
	return d, ca, err
}

func connect(t *testing.T, s *tokenmqtest.Server, clientID, tok string) *device {
	t.Helper()
	d, ca, err := dial(s.MQTT, clientID, tok, nil)
	if err != nil || ca.ReasonCode != 0 {
		t.Fatalf("connect %s: %v %+v", clientID, err, ca)
	}
	t.Cleanup(func() { _ = d.c.Disconnect(&paho.Disconnect{}) })
	return d
}

// wait returns the next message on topic, or fails after timeout.
func (d *device) wait(t *testing.T, topic string, timeout time.Duration) *paho.Publish {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case p := <-d.got:
			if p.Topic == topic {
				return p
			}
		case <-deadline:
			t.Fatalf("no message on %s within %v", topic, timeout)
		}
	}
}

// quiet fails if a message on topic arrives within a round trip.
func (d *device) quiet(t *testing.T, topic string) {
	t.Helper()
	if _, err := d.c.Publish(context.Background(), &paho.Publish{Topic: "fence/x", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case p := <-d.got:
			if p.Topic == topic {
				t.Fatalf("unexpected message on %s: %s", topic, p.Payload)
			}
		default:
			return
		}
	}
}

func TestParallelServers(t *testing.T) {
	for i := range 6 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			s := tokenmqtest.Start(t)
			tok := s.MustApply(t, time.Hour, "R,W", "dev/#", "fence/#")
			d := connect(t, s, "dev-1", tok)
			if _, err := d.c.Subscribe(context.Background(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "dev/#", QoS: 1}}}); err != nil {
				t.Fatal(err)
			}
			payload := fmt.Sprintf("server %d", i)
			if _, err := d.c.Publish(context.Background(), &paho.Publish{Topic: "dev/x", QoS: 1, Payload: []byte(payload)}); err != nil {
				t.Fatal(err)
			}
			if got := d.wait(t, "dev/x", 5*time.Second); string(got.Payload) != payload {
				t.Fatalf("got %q from another server?", got.Payload)
			}
			if e, err := s.WaitEvent(time.Second, func(e tokenauth.Event) bool { return e.Kind == "connect" }); err != nil || e.Result != "accepted" || e.ClientID != "dev-1" {
				t.Fatalf("connect event %+v, %v", e, err)
			}
		})
	}
}

// Close disconnects, stops every goroutine the server started, and removes
// the data dir.
func TestCloseLeavesNothingBehind(t *testing.T) {
	before := runtime.NumGoroutine()
	s, err := tokenmqtest.New(tokenmqtest.WithClock(), tokenmqtest.WithExpireNotice(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.Apply(time.Hour, "R,W", "dev/#")
	if err != nil {
		t.Fatal(err)
	}
	d, ca, err := dial(s.MQTT, "dev", tok, nil)
	if err != nil || ca.ReasonCode != 0 {
		t.Fatal(err, ca)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the client was not disconnected by Close")
	}
	if _, err := os.Stat(s.Dir); !os.IsNotExist(err) {
		t.Fatalf("data dir %s left behind: %v", s.Dir, err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines after Close, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

// The clock drives the expiry notice and the disconnect at expiry to the
// millisecond, with no waiting.
func TestClockDrivesExpiry(t *testing.T) {
	s := tokenmqtest.Start(t, tokenmqtest.WithClock(), tokenmqtest.WithExpireNotice(30*time.Second))
	start := s.Now()
	tok := s.MustApply(t, 10*time.Minute, "R,W", "dev/#", "fence/#")
	d := connect(t, s, "dev", tok)

	s.Advance(10*time.Minute - 30*time.Second - time.Millisecond)
	d.quiet(t, "$SYS/tokenExpireNotice")
	s.Advance(time.Millisecond)
	n := d.wait(t, "$SYS/tokenExpireNotice", 2*time.Second)
	var body struct {
		ExpireTime int64
		Type       string
	}
	if err := json.Unmarshal(n.Payload, &body); err != nil || body.ExpireTime != start.Add(10*time.Minute).UnixMilli() || body.Type != "RW" {
		t.Fatalf("notice %s", n.Payload)
	}

	s.Advance(30*time.Second - time.Millisecond)
	if _, err := d.c.Publish(context.Background(), &paho.Publish{Topic: "dev/still", QoS: 1}); err != nil {
		t.Fatalf("a millisecond before expiry: %v", err)
	}
	s.Advance(time.Millisecond)
	select {
	case dp := <-d.gone:
		if dp.ReasonCode != 0xA0 {
			t.Fatalf("DISCONNECT 0x%02x, want 0xA0", dp.ReasonCode)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("not disconnected at expiry")
	}
	e, err := s.WaitEvent(time.Second, func(e tokenauth.Event) bool { return e.Kind == "disconnect" })
	if err != nil || e.Result != "expired" || e.Code != 0xA0 || e.ClientID != "dev" || !e.Time.Equal(start.Add(10*time.Minute)) {
		t.Fatalf("disconnect event %+v, %v", e, err)
	}
	// And a token past its expiry is refused on CONNECT.
	if _, ca, _ := dial(s.MQTT, "late", tok, nil); ca == nil || ca.ReasonCode != 0x86 {
		t.Fatalf("CONNECT with the expired token: %+v", ca)
	}
}

// The recorded decisions say why a device was refused.
func TestEventsSayWhy(t *testing.T) {
	s := tokenmqtest.Start(t)
	tok := s.MustApply(t, time.Hour, "R,W", "dev/#")
	_, ca, _ := dial(s.MQTT, "pump", tok, func(c *paho.Connect) {
		c.WillMessage = &paho.WillMessage{Topic: "elsewhere/lwt", Payload: []byte("bye")}
	})
	if ca == nil || ca.ReasonCode != 0x87 {
		t.Fatalf("CONNECT with a Will outside the token: %+v", ca)
	}
	e, err := s.WaitEvent(time.Second, func(e tokenauth.Event) bool { return e.ClientID == "pump" })
	if err != nil || e.Kind != "connect" || e.Result != "refused" || e.Reason != "will_not_allowed" || e.Code != 0x87 {
		t.Fatalf("event %+v, %v", e, err)
	}
	d := connect(t, s, "revoked-one", tok)
	if err := s.Revoke(tok); err != nil {
		t.Fatal(err)
	}
	if dp := <-d.gone; dp.ReasonCode != 0x98 {
		t.Fatalf("DISCONNECT 0x%02x", dp.ReasonCode)
	}
	if e, err := s.WaitEvent(time.Second, func(e tokenauth.Event) bool { return e.Kind == "disconnect" }); err != nil || e.Result != "revoked" {
		t.Fatalf("event %+v, %v", e, err)
	}
}

// Offline sessions expire by the clock too.
func TestSessionExpiryFollowsTheClock(t *testing.T) {
	s := tokenmqtest.Start(t, tokenmqtest.WithClock())
	tok := s.MustApply(t, 24*time.Hour, "R,W", "dev/#")
	persistent := func(c *paho.Connect) {
		exp := uint32(3600)
		c.CleanStart, c.Properties = false, &paho.ConnectProperties{SessionExpiryInterval: &exp}
	}
	d, ca, err := dial(s.MQTT, "sleeper", tok, persistent)
	if err != nil || ca.ReasonCode != 0 {
		t.Fatal(err, ca)
	}
	offline(t, s, d, "sleeper")
	s.Advance(59 * time.Minute)
	d, ca, _ = dial(s.MQTT, "sleeper", tok, persistent)
	if !ca.SessionPresent {
		t.Fatal("the session expired before its interval")
	}
	offline(t, s, d, "sleeper")
	s.Advance(61 * time.Minute)
	d, ca, _ = dial(s.MQTT, "sleeper", tok, persistent)
	if ca.SessionPresent {
		t.Fatal("the session outlived its expiry interval")
	}
	_ = d.c.Disconnect(&paho.Disconnect{})
}

// offline disconnects d and waits until the broker keeps its session offline.
func offline(t *testing.T, s *tokenmqtest.Server, d *device, clientID string) {
	t.Helper()
	_ = d.c.Disconnect(&paho.Disconnect{})
	<-d.c.Done()
	deadline := time.Now().Add(5 * time.Second)
	for !s.SessionOffline(clientID) {
		if time.Now().After(deadline) {
			t.Fatal("the session did not go offline")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestAdvanceNeedsTheClock(t *testing.T) {
	s := tokenmqtest.Start(t)
	defer func() {
		if r := recover(); r != tokenmqtest.ErrNoClock {
			t.Fatalf("recovered %v", r)
		}
	}()
	s.Advance(time.Second)
}

// The official Alibaba Cloud SDK works against it with only the endpoint
// changed.
func TestAlibabaSDK(t *testing.T) {
	s := tokenmqtest.Start(t, tokenmqtest.WithInstanceID("post-cn-test"))
	client, err := onsmqtt.NewClientWithAccessKey("cn-hangzhou", s.AccessKeyID, s.AccessKeySecret)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(s.Endpoint)
	req := onsmqtt.CreateApplyTokenRequest()
	req.Domain, req.Scheme = u.Host, "http"
	req.InstanceId, req.Resources, req.Actions = s.InstanceID, "devices/+/telemetry", "R,W"
	req.ExpireTime = requests.NewInteger64(time.Now().Add(time.Hour).UnixMilli())
	resp, err := client.ApplyToken(req)
	if err != nil || resp.Token == "" {
		t.Fatalf("ApplyToken: %v %+v", err, resp)
	}
	d := connect(t, s, "sdk-device", resp.Token)
	if _, err := d.c.Publish(context.Background(), &paho.Publish{Topic: "devices/7/telemetry", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	q := onsmqtt.CreateQueryTokenRequest()
	q.Domain, q.Scheme = u.Host, "http"
	q.InstanceId, q.Token = s.InstanceID, resp.Token
	if qr, err := client.QueryToken(q); err != nil || !qr.TokenStatus {
		t.Fatalf("QueryToken: %v %+v", err, qr)
	}
	if !strings.HasPrefix(s.Username(), "Token|"+s.AccessKeyID+"|post-cn-test") {
		t.Fatalf("Username %q", s.Username())
	}
}

// Starting a Server: the data dir, a key, the listeners, the store.
func BenchmarkStart(b *testing.B) {
	for b.Loop() {
		s, err := tokenmqtest.New()
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
