package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/tokenmq/tokenmq/internal/testkit"
)

// soakDuration is 10 s in a normal run; TOKENMQ_SOAK=3m runs it longer.
func soakDuration(t *testing.T) time.Duration {
	if s := os.Getenv("TOKENMQ_SOAK"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("TOKENMQ_SOAK: %v", err)
		}
		return d
	}
	return 10 * time.Second
}

// soakClient is a bare paho client that keeps nothing it receives and is
// not held by t.Cleanup: the soak measures the broker's memory, not the
// test's.
func soakClient(t *testing.T, addr, clientID, password string, received *atomic.Int64) (*paho.Client, chan struct{}, byte) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Errorf("dial: %v", err)
		return nil, nil, 0
	}
	closed := make(chan struct{})
	var once sync.Once
	done := func() { once.Do(func() { close(closed) }) }
	c := paho.NewClient(paho.ClientConfig{
		ClientID: clientID, Conn: packets.NewThreadSafeConn(conn),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(paho.PublishReceived) (bool, error) {
			received.Add(1)
			return true, nil
		}},
		OnServerDisconnect: func(*paho.Disconnect) { done() },
		OnClientError:      func(error) { done() },
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: true,
		Username: "d", UsernameFlag: true, Password: []byte(password), PasswordFlag: true})
	if ca == nil {
		t.Errorf("connect %s: %v", clientID, err)
		return nil, nil, 0
	}
	if ca.ReasonCode != 0 {
		return nil, nil, ca.ReasonCode
	}
	return c, closed, 0
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// ISSUE 4 — soak: many clients publishing, renewing, expiring and being
// revoked for a while; afterwards no goroutine is left behind and the heap
// is back where it was.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test")
	}
	d := soakDuration(t)
	workers := 40
	if raceEnabled {
		workers = 20
	}
	e := startEnv(t, shortTTL, withNotice(time.Second))
	var delivered atomic.Int64
	sink, _, code := soakClient(t, e.mqtt, "sink", e.apply("soak/#", "R", 24*time.Hour), &delivered)
	if sink == nil {
		t.Fatalf("sink: 0x%02x", code)
	}
	defer sink.Disconnect(&paho.Disconnect{})
	if _, err := sink.Subscribe(context.Background(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "soak/#"}}}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, "the sink's session", func() bool { return e.srv.Hook().Sessions() == 1 })
	baseline := runtime.NumGoroutine()
	heapBefore := heapInUse()

	var published, renewed, revoked, kicked, connects atomic.Int64
	var revokeMu sync.Mutex
	current := map[int]string{} // worker -> token in use, for the revoker
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			topic := fmt.Sprintf("soak/%d", w)
			for {
				select {
				case <-stop:
					return
				default:
				}
				tok := e.apply(topic, "R,W", time.Duration(2+rng.IntN(3))*time.Second)
				revokeMu.Lock()
				current[w] = tok
				revokeMu.Unlock()
				c, closed, code := soakClient(t, e.mqtt, fmt.Sprintf("soak-%d", w), tok, &delivered)
				if c == nil {
					t.Errorf("worker %d: CONNACK 0x%02x", w, code)
					return
				}
				connects.Add(1)
				for alive := true; alive; {
					select {
					case <-stop:
						c.Disconnect(&paho.Disconnect{})
						return
					case <-closed:
						kicked.Add(1)
						alive = false
					case <-time.After(time.Duration(5+rng.IntN(20)) * time.Millisecond):
						ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
						if _, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: byte(rng.IntN(2)), Payload: []byte("x")}); err == nil {
							published.Add(1)
						}
						cancel()
						if rng.IntN(100) == 0 { // renew now and then
							next := e.apply(topic, "R,W", time.Duration(2+rng.IntN(3))*time.Second)
							ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
							if _, err := c.Publish(ctx, &paho.Publish{Topic: "$SYS/uploadToken", QoS: 1,
								Payload: fmt.Appendf(nil, `{"token":%q,"type":"RW"}`, next)}); err == nil {
								renewed.Add(1)
								revokeMu.Lock()
								current[w] = next
								revokeMu.Unlock()
							}
							cancel()
						}
					}
				}
			}
		}()
	}
	// The revoker: every 200 ms, revoke some worker's current token.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			revokeMu.Lock()
			tok := current[i%workers]
			revokeMu.Unlock()
			if tok != "" {
				if _, err := e.api.RevokeToken(context.Background(), "mqtt-local", tok); err == nil {
					revoked.Add(1)
				}
			}
		}
	}()
	time.Sleep(d) // the soak itself: a fixed duration of load, not a wait for an event
	close(stop)
	wg.Wait()

	testkit.WaitFor(t, 10*time.Second, "the workers' sessions to end", func() bool { return e.srv.Hook().Sessions() == 1 })
	goroutinesSettle(t, baseline, 5)
	heapAfter := heapInUse()
	t.Logf("soak %v, %d clients: %d connects, %d publishes (%d delivered), %d renewals, %d revocations, %d disconnects by the broker; goroutines back to %d (baseline %d); heap in use %d KiB -> %d KiB",
		d, workers, connects.Load(), published.Load(), delivered.Load(), renewed.Load(), revoked.Load(), kicked.Load(),
		runtime.NumGoroutine(), baseline, heapBefore>>10, heapAfter>>10)
	if kicked.Load() == 0 || renewed.Load() == 0 || published.Load() < int64(workers) {
		t.Fatal("the soak did not exercise expiry/revocation, renewal and publishing")
	}
	if heapAfter > heapBefore*2+16<<20 {
		t.Fatalf("heap grew from %d KiB to %d KiB", heapBefore>>10, heapAfter>>10)
	}
}
