package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	pahov3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/tokenmq/tokenmq/api"
	"github.com/tokenmq/tokenmq/broker"
	"github.com/tokenmq/tokenmq/config"
	"github.com/tokenmq/tokenmq/internal/mosqtest"
	"github.com/tokenmq/tokenmq/internal/testkit"
)

// env is an in-process tokenmq (role all) on 127.0.0.1:0 listeners.
type env struct {
	t      testing.TB
	srv    *broker.Server
	api    *api.Client
	mqtt   string // host:port of MQTT over TCP
	ws     string
	logs   *syncLog
	config config.Config
	// mosq is set when the broker under test is Mosquitto with tokenmq's
	// plugin (plugin_env_test.go); mqtt is then its address.
	mosq *mosqtest.Broker
	px   *proxy // between the plugin and the token service
}

// envOption adjusts the configuration before start.
type envOption func(*config.Config)

// shortTTL lets tokens live for seconds: the test-only knob of SPEC-issue 3.
func shortTTL(c *config.Config) { c.Tokens.MinTTL = 500 * time.Millisecond }

func withNotice(d time.Duration) envOption {
	return func(c *config.Config) { c.Broker.ExpireNotice = d }
}

func startEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.APIAddr, cfg.MQTTAddr, cfg.WSAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.API.RateLimits = config.RateLimits{} // tests call faster than 100/s
	for _, o := range opts {
		o(&cfg)
	}
	cfg.SetDefaults()
	logs := &syncLog{}
	srv, err := broker.New(broker.Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		AccessKeys: []api.AccessKey{{ID: adminID, Secret: adminSecret, Role: api.RoleAdmin}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return &env{t: t, srv: srv, logs: logs, config: cfg,
		api:  &api.Client{Endpoint: "http://" + srv.APIAddr().String(), AccessKeyID: adminID, AccessKeySecret: adminSecret},
		mqtt: srv.MQTTAddr("tcp"), ws: srv.MQTTAddr("ws")}
}

// apply issues a token for the env's instance.
func (e *env) apply(resources, actions string, ttl time.Duration) string {
	e.t.Helper()
	return applyWith(e.t, e.api, resources, actions, ttl)
}

func applyWith(t testing.TB, c *api.Client, resources, actions string, ttl time.Duration) string {
	t.Helper()
	r, err := c.ApplyToken(context.Background(), api.ApplyTokenRequest{
		InstanceID: "mqtt-local", Resources: strings.Split(resources, ","), Actions: actions, ExpireTime: time.Now().Add(ttl)})
	if err != nil {
		t.Fatalf("ApplyToken: %v", err)
	}
	return r.Token
}

func (e *env) revoke(tok string) {
	e.t.Helper()
	if _, err := e.api.RevokeToken(context.Background(), "mqtt-local", tok); err != nil {
		e.t.Fatalf("RevokeToken: %v", err)
	}
}

// syncLog collects log output for scanning.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *syncLog) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// message is a PUBLISH a test client received.
type message struct {
	topic   string
	payload string
	retain  bool
	props   map[string]string // MQTT 5 user properties
}

// client5 is an MQTT 5 client (paho.golang) with what it received.
type client5 struct {
	t              *testing.T
	sessionPresent bool
	c              *paho.Client
	mu             sync.Mutex
	msgs           []message
	disconnect     *paho.Disconnect
	closed         chan struct{}
}

// noAuther is a paho.Auther for the one-step "tokenmq" method.
type noAuther struct{}

func (noAuther) Authenticate(a *paho.Auth) *paho.Auth { return &paho.Auth{ReasonCode: 0x18} }
func (noAuther) Authenticated()                       {}

// noConnack is the code the connect helpers return when the broker closed
// the socket without a CONNACK.
const noConnack = 0xFF

// connect5 opens an MQTT 5 connection; conn may be nil for TCP to addr.
// It returns the client (nil if refused) and the CONNACK reason code.
func connect5(t *testing.T, addr, clientID, username, password string, extra ...func(*paho.Connect)) (*client5, byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return connect5Over(t, conn, clientID, username, password, extra...)
}

func connect5Over(t *testing.T, conn net.Conn, clientID, username, password string, extra ...func(*paho.Connect)) (*client5, byte) {
	t.Helper()
	return dial5(t, conn, clientID, username, password, false, extra...)
}

// connect5NoAck connects an MQTT 5 client that never acknowledges what it
// receives: its deliveries stay in flight.
func connect5NoAck(t *testing.T, addr, clientID, username, password string, extra ...func(*paho.Connect)) *client5 {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c, code := dial5(t, conn, clientID, username, password, true, extra...)
	if c == nil {
		t.Fatalf("connect %s refused with 0x%02x", clientID, code)
	}
	return c
}

func dial5(t *testing.T, conn net.Conn, clientID, username, password string, noAck bool, extra ...func(*paho.Connect)) (*client5, byte) {
	t.Helper()
	cl := &client5{t: t, closed: make(chan struct{})}
	var closeOnce sync.Once
	cl.c = paho.NewClient(paho.ClientConfig{
		EnableManualAcknowledgment: noAck,
		AuthHandler:                noAuther{}, // paho needs one when a CONNACK names the Authentication Method (Mosquitto's do)
		ClientID:                   clientID,
		Conn:                       packets.NewThreadSafeConn(conn), // paho writes from several goroutines
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			cl.mu.Lock()
			m := message{topic: pr.Packet.Topic, payload: string(pr.Packet.Payload), retain: pr.Packet.Retain, props: map[string]string{}}
			if pr.Packet.Properties != nil {
				for _, up := range pr.Packet.Properties.User {
					m.props[up.Key] = up.Value
				}
			}
			cl.msgs = append(cl.msgs, m)
			cl.mu.Unlock()
			return true, nil
		}},
		OnServerDisconnect: func(d *paho.Disconnect) {
			cl.mu.Lock()
			cl.disconnect = d
			cl.mu.Unlock()
			closeOnce.Do(func() { close(cl.closed) })
		},
		OnClientError: func(error) { closeOnce.Do(func() { close(cl.closed) }) },
	})
	cp := &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: true}
	if username != "" {
		cp.Username, cp.UsernameFlag = username, true
	}
	if password != "" {
		cp.Password, cp.PasswordFlag = []byte(password), true
	}
	for _, f := range extra {
		f(cp)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ca, err := cl.c.Connect(ctx, cp)
	if ca == nil {
		t.Logf("connect %s: no CONNACK: %v", clientID, err)
		return nil, noConnack
	}
	if ca.ReasonCode != 0 {
		return nil, ca.ReasonCode
	}
	cl.sessionPresent = ca.SessionPresent
	t.Cleanup(func() {
		_ = cl.c.Disconnect(&paho.Disconnect{})
		select {
		case <-cl.c.Done():
		case <-time.After(time.Second):
		}
	})
	return cl, 0
}

// mustConnect5 connects and fails the test on refusal.
func mustConnect5(t *testing.T, addr, clientID, username, password string, extra ...func(*paho.Connect)) *client5 {
	t.Helper()
	c, code := connect5(t, addr, clientID, username, password, extra...)
	if c == nil {
		t.Fatalf("connect %s refused with 0x%02x", clientID, code)
	}
	return c
}

func mustConnect5Over(t *testing.T, conn net.Conn, clientID, username, password string, extra ...func(*paho.Connect)) *client5 {
	t.Helper()
	c, code := connect5Over(t, conn, clientID, username, password, extra...)
	if c == nil {
		t.Fatalf("connect %s refused with 0x%02x", clientID, code)
	}
	return c
}

// subscribe returns the SUBACK reason code of one filter.
func (c *client5) subscribe(filter string, qos byte) byte {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sa, err := c.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: qos}}})
	if sa == nil {
		c.t.Fatalf("subscribe %s: %v", filter, err)
	}
	return sa.Reasons[0]
}

// publish returns the PUBACK/PUBREC reason code (0 for QoS 0). 0x10, No
// matching subscribers (a success code Mosquitto sends), counts as 0x00.
func (c *client5) publish(topic string, qos byte, retain bool, payload string) byte {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pr, err := c.c.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Retain: retain, Payload: []byte(payload)})
	if qos == 0 {
		if err != nil {
			c.t.Fatalf("publish %s: %v", topic, err)
		}
		return 0
	}
	if pr == nil {
		c.t.Fatalf("publish %s: no acknowledgement: %v", topic, err)
	}
	if pr.ReasonCode == 0x10 {
		return 0
	}
	return pr.ReasonCode
}

// routed returns once the broker has routed every publish c made before:
// a client's publishes are handled in order, and the acknowledgement of a
// QoS 1 publish on fence (a topic c may write and nobody reads) follows
// the routing of the ones before it. (Mochi sends a PUBACK before it
// routes the message, so the last publish's own PUBACK does not say it.)
func (c *client5) routed(fence string) {
	c.t.Helper()
	if code := c.publish(fence, 1, false, "fence"); code != 0 {
		c.t.Fatalf("fence publish on %s: 0x%02x", fence, code)
	}
}

func (c *client5) received() []message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.msgs)
}

// waitMessage waits for a message on topic and returns it.
func (c *client5) waitMessage(topic string, timeout time.Duration) message {
	c.t.Helper()
	var got message
	testkit.WaitFor(c.t, timeout, "a message on "+topic, func() bool {
		for _, m := range c.received() {
			if m.topic == topic {
				got = m
				return true
			}
		}
		return false
	})
	return got
}

// waitClosed waits for the server to end the connection and returns the
// DISCONNECT reason code (-1 if the socket closed without one).
func (c *client5) waitClosed(timeout time.Duration) int {
	c.t.Helper()
	select {
	case <-c.closed:
	case <-time.After(timeout):
		c.t.Fatalf("connection still open after %v", timeout)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.disconnect == nil {
		return -1
	}
	return int(c.disconnect.ReasonCode)
}

// client3 is an MQTT 3.1.1 client (paho.mqtt.golang).
type client3 struct {
	t              *testing.T
	sessionPresent bool
	c              pahov3.Client
	mu             sync.Mutex
	msgs           []message
	lost           chan struct{}
}

// connect3 opens an MQTT 3.1.1 connection and returns the client (nil if
// refused) and the CONNACK return code.
func connect3(t *testing.T, addr, clientID, username, password string, will ...string) (*client3, byte) {
	t.Helper()
	return dial3(t, addr, clientID, username, password, func(o *pahov3.ClientOptions) {
		if len(will) == 2 {
			o.SetWill(will[0], will[1], 1, false)
		}
	})
}

// connect3Persistent opens an MQTT 3.1.1 connection with CleanSession 0.
func connect3Persistent(t *testing.T, addr, clientID, username, password string) (*client3, byte) {
	t.Helper()
	return dial3(t, addr, clientID, username, password, func(o *pahov3.ClientOptions) { o.SetCleanSession(false) })
}

// connect3NoAck opens a CleanSession 0 connection that never acknowledges
// what it receives.
func connect3NoAck(t *testing.T, addr, clientID, username, password string) (*client3, byte) {
	t.Helper()
	return dial3(t, addr, clientID, username, password, func(o *pahov3.ClientOptions) { o.SetCleanSession(false).SetAutoAckDisabled(true) })
}

func dial3(t *testing.T, addr, clientID, username, password string, edit func(*pahov3.ClientOptions)) (*client3, byte) {
	t.Helper()
	cl := &client3{t: t, lost: make(chan struct{})}
	var lostOnce sync.Once
	o := pahov3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(clientID).SetProtocolVersion(4).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second).SetCleanSession(true).
		SetConnectionLostHandler(func(pahov3.Client, error) { lostOnce.Do(func() { close(cl.lost) }) }).
		SetDefaultPublishHandler(func(_ pahov3.Client, m pahov3.Message) {
			cl.mu.Lock()
			cl.msgs = append(cl.msgs, message{topic: m.Topic(), payload: string(m.Payload()), retain: m.Retained()})
			cl.mu.Unlock()
		})
	if username != "" {
		o.SetUsername(username)
	}
	if password != "" {
		o.SetPassword(password)
	}
	edit(o)
	cl.c = pahov3.NewClient(o)
	tok := cl.c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatalf("v3 connect %s: timed out", clientID)
	}
	code := tok.(*pahov3.ConnectToken).ReturnCode()
	if tok.Error() != nil {
		if code == 0 || code == 0xFE { // the socket closed without a CONNACK (paho: network error)
			t.Logf("v3 connect %s: no CONNACK: %v", clientID, tok.Error())
			return nil, noConnack
		}
		return nil, code
	}
	cl.sessionPresent = tok.(*pahov3.ConnectToken).SessionPresent()
	t.Cleanup(func() { cl.c.Disconnect(100) })
	return cl, code
}

func (c *client3) subscribe(filter string, qos byte) byte {
	c.t.Helper()
	tok := c.c.Subscribe(filter, qos, nil)
	if !tok.WaitTimeout(5 * time.Second) {
		c.t.Fatalf("v3 subscribe %s timed out", filter)
	}
	return tok.(*pahov3.SubscribeToken).Result()[filter]
}

func (c *client3) publish(topic string, qos byte, payload string) error {
	c.t.Helper()
	tok := c.c.Publish(topic, qos, false, payload)
	if !tok.WaitTimeout(5 * time.Second) {
		return fmt.Errorf("v3 publish %s: no acknowledgement in 5s", topic)
	}
	return tok.Error()
}

func (c *client3) received() []message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.msgs)
}

func (c *client3) waitLost(timeout time.Duration) {
	c.t.Helper()
	select {
	case <-c.lost:
	case <-time.After(timeout):
		c.t.Fatalf("v3 connection still open after %v", timeout)
	}
}

// neverReceives checks, after a round trip, that no message arrived on topics matching pred.
func neverReceived(t *testing.T, msgs []message, pred func(message) bool) {
	t.Helper()
	for _, m := range msgs {
		if pred(m) {
			t.Fatalf("received %+v, which it must not", m)
		}
	}
}

// httpGet returns the status of GET url.
func httpGet(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func jsonDecode(t *testing.T, resp *http.Response, v any) {
	t.Helper()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("decoding %s: %v", resp.Request.URL, err)
	}
}

func readAll(resp *http.Response) (string, error) {
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
