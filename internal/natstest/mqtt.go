package natstest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tokenmq/tokenmq/internal/testkit"
)

// Client is a paho.mqtt.golang connection (MQTT 3.1.1: all NATS speaks).
type Client struct {
	C    mqtt.Client
	mu   sync.Mutex
	msgs []Msg
	Lost chan error
}

// Msg is a received message.
type Msg struct{ Topic, Payload string }

func (c *Client) Received() []Msg {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.msgs)
}

func (c *Client) Payloads() []string {
	var out []string
	for _, m := range c.Received() {
		out = append(out, m.Payload)
	}
	return out
}

// dial connects; rc is the CONNACK return code (0 accepted; 5 is every
// refusal NATS makes).
func Dial(t *testing.T, addr, clientID, username, password string, clean bool) (*Client, byte) {
	t.Helper()
	cl := &Client{Lost: make(chan error, 1)}
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(clientID).SetUsername(username).SetPassword(password).
		SetProtocolVersion(4).SetCleanSession(clean).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(10 * time.Second).
		SetKeepAlive(30 * time.Second).SetOrderMatters(false).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			cl.mu.Lock()
			cl.msgs = append(cl.msgs, Msg{m.Topic(), string(m.Payload())})
			cl.mu.Unlock()
		}).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) { cl.Lost <- err })
	cl.C = mqtt.NewClient(o)
	tok := cl.C.Connect()
	if !tok.WaitTimeout(15 * time.Second) {
		t.Fatalf("connect %s: no CONNACK", clientID)
	}
	rc := tok.(*mqtt.ConnectToken).ReturnCode()
	if rc == 0 {
		t.Cleanup(func() { cl.C.Disconnect(50) })
	}
	return cl, rc
}

func MustDial(t *testing.T, addr, clientID, password string) *Client {
	t.Helper()
	c, rc := Dial(t, addr, clientID, "device", password, true)
	if rc != 0 {
		t.Fatalf("connect %s to %s: return code %d", clientID, addr, rc)
	}
	return c
}

// DialUntil connects within 10 s, retrying a connection NATS dropped
// before its CONNACK (a cluster whose JetStream, where MQTT sessions live,
// is still settling); a refusal (return code 5) fails the test at once.
func DialUntil(t *testing.T, addr, clientID, password string, clean bool) *Client {
	t.Helper()
	var c *Client
	testkit.WaitFor(t, 10*time.Second, clientID+" connected", func() bool {
		var rc byte
		c, rc = Dial(t, addr, clientID, "device", password, clean)
		if rc == 5 {
			t.Fatalf("connect %s: refused", clientID)
		}
		return rc == 0
	})
	return c
}

// subscribe returns the SUBACK's granted QoS (0x80: refused).
func (c *Client) Subscribe(t *testing.T, filter string, qos byte) byte {
	t.Helper()
	tok := c.C.Subscribe(filter, qos, nil)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	return tok.(*mqtt.SubscribeToken).Result()[filter]
}

func (c *Client) Publish(t *testing.T, topic string, qos byte, retained bool, payload string) {
	t.Helper()
	tok := c.C.Publish(topic, qos, retained, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

func WaitPayloads(t *testing.T, c *Client, want ...string) {
	t.Helper()
	testkit.WaitFor(t, 10*time.Second, fmt.Sprintf("messages %q", want), func() bool {
		got := c.Payloads()
		for _, w := range want {
			if !slices.Contains(got, w) {
				return false
			}
		}
		return true
	})
}

// fence publishes on a topic sub reads and waits for it: what was
// published before on the same node has had its chance to arrive.
func Fence(t *testing.T, pub, sub *Client, topic string) {
	t.Helper()
	id := fmt.Sprint("fence-", time.Now().UnixNano())
	pub.Publish(t, topic, 1, false, id)
	WaitPayloads(t, sub, id)
}
