package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/tokenmq/tokenmq/internal/testkit"
)

// persistent5 makes an MQTT 5 CONNECT ask for a session that outlives the
// connection (Clean Start 0, a Session Expiry Interval).
func persistent5(c *paho.Connect) {
	exp := uint32(3600)
	c.CleanStart = false
	if c.Properties == nil {
		c.Properties = &paho.ConnectProperties{}
	}
	c.Properties.SessionExpiryInterval = &exp
}

// sessionClient is a client of either protocol, for the tests that run both.
type sessionClient interface {
	subscribe(filter string, qos byte) byte
	received() []message
	close()
	present() bool
}

func (c *client5) close()        { _ = c.c.Disconnect(&paho.Disconnect{}); <-c.c.Done() }
func (c *client5) present() bool { return c.sessionPresent }
func (c *client3) close()        { c.c.Disconnect(250) }
func (c *client3) present() bool { return c.sessionPresent }

// connectSession connects a persistent session of protocol v (5 or 4).
func connectSession(t *testing.T, v int, addr, clientID, tok string) sessionClient {
	t.Helper()
	if v == 5 {
		return mustConnect5(t, addr, clientID, "d", tok, persistent5)
	}
	c, code := connect3Persistent(t, addr, clientID, "d", tok)
	if c == nil {
		t.Fatalf("v3.1.1 persistent connect %s: 0x%02x", clientID, code)
	}
	return c
}

func payloads(ms []message, topicPrefix string) []string {
	var out []string
	for _, m := range ms {
		if len(m.topic) >= len(topicPrefix) && m.topic[:len(topicPrefix)] == topicPrefix {
			out = append(out, m.payload)
		}
	}
	return out
}

func waitPayloads(t *testing.T, c sessionClient, prefix string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := payloads(c.received(), prefix)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 5s waiting for %d messages on %s; received %q", n, prefix, got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// SPEC §3.6: QoS 1 messages published while a persistent session is
// offline are queued under the rights it last held and delivered, in order,
// when it resumes (Session Present 1); in MQTT 3.1.1 and 5.
func TestOfflineQueueDeliveredOnResume(t *testing.T) {
	testOfflineQueueDeliveredOnResume(t, startEnv(t))
}

func testOfflineQueueDeliveredOnResume(t *testing.T, e *env) {
	for _, v := range []int{4, 5} {
		t.Run(fmt.Sprint("v", v), func(t *testing.T) {
			tok := e.apply("fleet/#", "R", time.Hour)
			id := fmt.Sprint("sub-v", v)
			sub := connectSession(t, v, e.mqtt, id, tok)
			if code := sub.subscribe("fleet/+/cmd", 1); code != 1 {
				t.Fatalf("SUBACK 0x%02x", code)
			}
			sub.close()
			pub := mustConnect5(t, e.mqtt, "pub", "d", e.apply("fleet/#", "W", time.Hour))
			var want []string
			for i := range 10 {
				want = append(want, fmt.Sprint("m", i))
				if code := pub.publish(fmt.Sprintf("fleet/d%d/cmd", i%3), 1, false, want[i]); code != 0 {
					t.Fatalf("PUBACK 0x%02x", code)
				}
			}
			back := connectSession(t, v, e.mqtt, id, tok)
			if !back.present() {
				t.Fatal("Session Present 0 on resume")
			}
			if got := waitPayloads(t, back, "fleet/", 10); !slices.Equal(got, want) {
				t.Fatalf("received %q, want %q in order", got, want)
			}
		})
	}
}

// The last message acknowledged before a session resumes may still be on
// its way to the offline session when the resume begins (Mochi sends the
// PUBACK before it routes the message): that message is passed from the
// parked session to the resuming connection, and arrives in its place
// with the rest, round after round.
func TestResumeRacingLastDelivery(t *testing.T) {
	for _, v := range []int{4, 5} {
		t.Run(fmt.Sprint("v", v), func(t *testing.T) {
			e := startEnv(t)
			tok := e.apply("fleet/#", "R", time.Hour)
			id := fmt.Sprint("racer-v", v)
			sub := connectSession(t, v, e.mqtt, id, tok)
			if code := sub.subscribe("fleet/#", 1); code != 1 {
				t.Fatalf("SUBACK 0x%02x", code)
			}
			pub := mustConnect5(t, e.mqtt, "pub", "d", e.apply("fleet/#", "W", time.Hour))
			for round := range 25 {
				sub.close()
				var want []string
				for i := range 4 {
					want = append(want, fmt.Sprintf("r%d-m%d", round, i))
					if code := pub.publish("fleet/x", 1, false, want[i]); code != 0 {
						t.Fatalf("PUBACK 0x%02x", code)
					}
				}
				sub = connectSession(t, v, e.mqtt, id, tok)
				prefix := fmt.Sprintf("r%d-", round)
				testkit.WaitFor(t, 5*time.Second, "round "+prefix, func() bool { return len(firstSeen(sub.received(), prefix)) >= len(want) })
				if got := firstSeen(sub.received(), prefix); !slices.Equal(got, want) {
					t.Fatalf("round %d: received %q, want %q in order", round, got, want)
				}
			}
			sub.close()
		})
	}
}

// firstSeen is the payloads starting with prefix, in the order each first
// arrived (QoS 1 allows a message twice).
func firstSeen(ms []message, prefix string) []string {
	var out []string
	for _, m := range ms {
		if strings.HasPrefix(m.payload, prefix) && !slices.Contains(out, m.payload) {
			out = append(out, m.payload)
		}
	}
	return out
}

// Paho's interoperability suite checks offline message queueing this way:
// a CleanSession 0 client subscribed to "+/+" at QoS 2 is offline while
// QoS 0, 1 and 2 messages are published to three topics; when it resumes
// it gets the QoS 1 and 2 ones (the QoS 0 one may or may not come).
func TestPahoOfflineMessageQueueing(t *testing.T) {
	e := startEnv(t)
	tok := e.apply("#", "R,W", time.Hour)
	a, _ := connect3Persistent(t, e.mqtt, "myclientid", "d", tok)
	if a == nil {
		t.Fatal("refused")
	}
	if code := a.subscribe("+/+", 2); code != 2 {
		t.Fatalf("SUBACK 0x%02x", code)
	}
	a.close()
	b, _ := connect3(t, e.mqtt, "myclientid2", "d", tok)
	for i, topic := range []string{"TopicA/B", "Topic/C", "TopicA/C"} {
		if err := b.publish(topic, byte(i), fmt.Sprint("qos ", i)); err != nil {
			t.Fatal(err)
		}
	}
	a, _ = connect3Persistent(t, e.mqtt, "myclientid", "d", tok)
	testkit.WaitFor(t, 5*time.Second, "the queued messages", func() bool { return len(a.received()) >= 2 })
	time.Sleep(200 * time.Millisecond) // a QoS 0 message, if any, would be right behind
	got := a.received()
	if n := len(got); n != 2 && n != 3 {
		t.Fatalf("%d messages after resume, want 2 or 3: %+v", n, got)
	}
	for _, p := range []string{"qos 1", "qos 2"} {
		if !slices.Contains(payloads(got, ""), p) {
			t.Fatalf("%q missing from %+v", p, got)
		}
	}
}

// SPEC §3.6, §3.7: a connection that resumes another device's session
// with a token that does not cover its topics gets nothing of it: not the
// queued messages, not the retained ones, and the inherited subscription
// goes; every discarded message is counted.
func TestResumeWithForeignTokenGetsNothing(t *testing.T) {
	testResumeWithForeignTokenGetsNothing(t, startEnv(t))
}

func testResumeWithForeignTokenGetsNothing(t *testing.T, e *env) {
	for _, v := range []int{4, 5} {
		t.Run(fmt.Sprint("v", v), func(t *testing.T) {
			id := fmt.Sprint("pump-v", v)
			sec := fmt.Sprint("secret-v", v) // each version its own topics: the env (and its retained messages) is shared
			owner := connectSession(t, v, e.mqtt, id, e.apply(sec+"/#", "R", time.Hour))
			if code := owner.subscribe(sec+"/#", 1); code != 1 {
				t.Fatalf("SUBACK 0x%02x", code)
			}
			owner.close()
			pub := mustConnect5(t, e.mqtt, "pub", "d", e.apply(sec+"/#,public/#", "W", time.Hour))
			for i := range 3 {
				pub.publish(sec+"/x", 1, false, fmt.Sprint("secret ", i))
			}
			pub.publish(sec+"/retained", 1, true, "secret retained")
			pub.routed("public/nobody") // all four met the offline session
			before := e.droppedOnResume()

			thief := connectSession(t, v, e.mqtt, id, e.apply("public/#", "R,W", time.Hour))
			if !thief.present() {
				t.Fatal("Session Present 0: the test needs the session to exist")
			}
			denied := byte(0x87)
			if v == 4 {
				denied = 0x80
			}
			if code := thief.subscribe(sec+"/#", 1); code != denied {
				t.Fatalf("thief SUBACK 0x%02x, want 0x%02x", code, denied)
			}
			if code := thief.subscribe("public/#", 1); code != 1 {
				t.Fatalf("thief SUBACK public 0x%02x", code)
			}
			pub.publish("public/x", 1, false, "fence")
			waitPayloads(t, thief, "public/", 1) // everything before the fence has arrived, if it was sent
			neverReceived(t, thief.received(), func(m message) bool { return m.topic != "public/x" })
			if got := e.droppedOnResume() - before; e.mosq == nil && got != 4 { // 3 + the retained one, queued as it was published (Mosquitto counts none)
				t.Fatalf("%d messages counted as dropped on resume, want 4", got)
			}
		})
	}
}

// A takeover of a connected device's session by a token without its rights
// gets none of the device's unacknowledged in-flight messages, including a
// v5 backlog beyond the device's Receive Maximum; the device gets 0x8E.
func TestTakeoverGetsNoInflight(t *testing.T) { testTakeoverGetsNoInflight(t, startEnv(t)) }

func testTakeoverGetsNoInflight(t *testing.T, e *env) {
	for _, v := range []int{4, 5} {
		t.Run(fmt.Sprint("v", v), func(t *testing.T) {
			id := fmt.Sprint("valve-v", v)
			sec := fmt.Sprint("secret-v", v) // each version its own topics: the env is shared
			ownerTok := e.apply(sec+"/#", "R", time.Hour)
			var owner5 *client5
			var owner3 *client3
			if v == 5 {
				owner5 = connect5NoAck(t, e.mqtt, id, "d", ownerTok, persistent5, func(c *paho.Connect) {
					one := uint16(1)
					c.Properties.ReceiveMaximum = &one
				})
				owner5.subscribe(sec+"/#", 1)
			} else {
				owner3, _ = connect3NoAck(t, e.mqtt, id, "d", ownerTok)
				owner3.subscribe(sec+"/#", 1)
			}
			pub := mustConnect5(t, e.mqtt, "pub", "d", e.apply(sec+"/#,public/#", "W", time.Hour))
			for i := range 5 {
				pub.publish(sec+"/x", 1, false, fmt.Sprint("secret ", i))
			}
			if v == 5 {
				waitPayloads(t, owner5, sec+"/", 1) // one sent, four waiting for the Receive Maximum
			} else {
				waitPayloads(t, owner3, sec+"/", 5) // all sent, none acknowledged
			}
			thief := connectSession(t, v, e.mqtt, id, e.apply("public/#", "R", time.Hour))
			if code := thief.subscribe("public/#", 1); code != 1 {
				t.Fatalf("SUBACK 0x%02x", code)
			}
			pub.publish("public/x", 1, false, "fence")
			waitPayloads(t, thief, "public/", 1)
			neverReceived(t, thief.received(), func(m message) bool { return m.topic != "public/x" })
			if v == 5 {
				// (Mosquitto sends 0x8E only from 2.0.15 on; 2.0.11 closes.)
				if code := owner5.waitClosed(2 * time.Second); code != 0x8E && e.mosq == nil {
					t.Fatalf("owner DISCONNECT %d, want 0x8e (session taken over)", code)
				}
			} else {
				owner3.waitLost(2 * time.Second)
			}
		})
	}
}
