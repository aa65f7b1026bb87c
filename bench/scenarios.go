package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokenmq/tokenmq/api"
)

// cred is a client's username and password on a target.
type cred struct{ user, pass string }

// outcome is one round of one scenario on one target.
type outcome struct {
	value    float64 // the scenario's measure (per second, or latency in ms, or KiB)
	ops      float64 // operations the value counts (rate scenarios), for CPU per operation
	failures int64   // refused or failed operations, counted apart
	note     string  // secondary figures
	// p50 and p99 are latencies of connect scenarios (CONNECT to CONNACK).
	p50, p99 time.Duration
	// expected and delivered count messages for delivery scenarios (what
	// subscribers should have received, and did), summed over rounds.
	expected, delivered int64
}

// hundredResources are a publisher's 100 token resources; own is the
// topic it publishes to, covered by the last one.
func hundredResources(i int) []string {
	rs := make([]string, 0, 100)
	for j := range 99 {
		rs = append(rs, fmt.Sprintf("fleet/site-%d/+/telemetry/%d", j, i))
	}
	return append(rs, fmt.Sprintf("bench/pub-%d/#", i))
}

// issue makes n credentials with the given rights on t: tokens (ApplyToken,
// 128 at a time, so that the store's batched commits fill up) for tokenmq, users for Mosquitto, anything for Mochi.
func (t *target) issue(n int, resources []string, actions string, prefix string) ([]cred, error) {
	out := make([]cred, n)
	switch t.kind {
	case "mochi", "net-http":
		for i := range out {
			out[i] = cred{"bench", "bench"}
		}
		return out, nil
	case "nats-static", "nats-static-bcrypt": // a user of the cluster's configuration
		u := natsStaticUser
		if t.kind == "nats-static-bcrypt" {
			u = natsBcryptUser
		}
		for i := range out {
			out[i] = cred{u.Name, u.Password}
		}
		return out, nil
	case "mosquitto": // the users startMosquitto made, with their ACLs
		for i := range out {
			u := fmt.Sprintf("%s-%d", prefix, i)
			out[i] = cred{u, "pw-" + u}
		}
		return out, nil
	}
	var next atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	for range 128 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				r, err := t.api.ApplyToken(ctx, api.ApplyTokenRequest{InstanceID: instance, Resources: resources,
					Actions: actions, ExpireTime: time.Now().Add(2 * time.Hour)})
				cancel()
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				out[i] = cred{"bench", r.Token}
			}
		}()
	}
	wg.Wait()
	return out, firstErr
}

// connectRound runs CONNECT -> CONNACK -> DISCONNECT loops from workers for
// d, taking credentials in turn (wrapping around unless fresh, where each is
// used once and the round ends early when they run out).
func connectRound(t *target, creds []cred, workers int, d time.Duration, fresh bool) outcome {
	var next, ok, failed atomic.Int64
	var ranOut atomic.Bool
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	lat := make([][]time.Duration, workers) // CONNECT to CONNACK, per worker
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				i := next.Add(1) - 1
				if fresh && int(i) >= len(creds) {
					ranOut.Store(true)
					return
				}
				c := creds[int(i)%len(creds)]
				t0 := time.Now()
				conn, err := dial(t.mqtt, fmt.Sprintf("c-%d-%d", w, i), c.user, c.pass, 10*time.Second)
				if err != nil {
					failed.Add(1)
					continue
				}
				lat[w] = append(lat[w], time.Since(t0))
				conn.close()
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	out := outcome{value: float64(ok.Load()) / el.Seconds(), ops: float64(ok.Load()), failures: failed.Load()}
	if len(all) > 0 {
		slices.Sort(all)
		out.p50, out.p99 = all[len(all)/2], all[len(all)*99/100]
		out.note = fmt.Sprintf("CONNACK p50 %.1f ms, p99 %.1f ms", ms(out.p50), ms(out.p99))
	}
	if ranOut.Load() && el < d {
		out.note += fmt.Sprintf("; new tokens ran out after %.1f s of %.1f s", el.Seconds(), d.Seconds())
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// publishRound: publishers with 100-resource credentials publish to their
// own topic as fast as the broker takes it (QoS 1 with 100 in flight each);
// one subscriber on "bench/#" counts what it receives (with a persistent
// session if persistent: each QoS 1 message is then kept for it, on disk
// where the broker persists, until it acknowledges).
func publishRound(t *target, pubs []cred, sub cred, qos byte, d time.Duration, persistent bool) outcome {
	received, sent, stop, err := runSubscribers(t, []cred{sub}, "bench/#", qos, persistent)
	if err != nil {
		return outcome{failures: 1, note: err.Error()}
	}
	defer stop()
	payload := make([]byte, 64)
	var failed atomic.Int64
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for i, p := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dial(t.mqtt, fmt.Sprintf("pub-%d", i), p.user, p.pass, 10*time.Second)
			if err != nil {
				failed.Add(1)
				return
			}
			defer c.close()
			topic := fmt.Sprintf("bench/pub-%d/data", i)
			if qos == 0 {
				for n := 1; time.Now().Before(deadline); n++ {
					for range 64 {
						c.publish(topic, 0, payload)
					}
					if c.w.Flush() != nil {
						failed.Add(1)
						return
					}
					sent.Add(64)
					if n%64 == 0 && c.ping() != nil { // keep the backlog in socket buffers bounded
						failed.Add(1)
						return
					}
				}
				// A PINGREQ is answered after every PUBLISH before it has been
				// routed: "sent" then counts what the broker took, not what
				// sits in a socket buffer when the round ends.
				if err := c.ping(); err != nil {
					failed.Add(1)
				}
				return
			}
			window := make(chan struct{}, 100)
			acks := make(chan struct{})
			go func() { // PUBACK reader
				defer close(acks)
				for {
					first, _, err := c.readPacket()
					if err != nil {
						return
					}
					if first>>4 == typePuback {
						<-window
						sent.Add(1)
					}
				}
			}()
			for time.Now().Before(deadline) {
				select {
				case window <- struct{}{}:
				case <-acks:
					failed.Add(1)
					return
				}
				c.publish(topic, 1, payload)
				if len(window) == cap(window) || len(window)%16 == 0 {
					c.w.Flush()
				}
			}
			c.w.Flush()
			for w := 0; len(window) > 0 && w < 200; w++ { // drain, up to 2 s
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	settle(received)
	got, put := received.Load(), sent.Load()
	note := fmt.Sprintf("sent %d, received %d", put, got)
	if put > 0 {
		note += fmt.Sprintf(" (%.1f%%)", 100*float64(got)/float64(put))
	}
	return outcome{value: float64(got) / el.Seconds(), ops: float64(got), failures: failed.Load(), note: note, expected: put, delivered: got}
}

// settle waits until a counter has not moved for 300 ms: the deliveries in
// flight have landed.
func settle(n *atomic.Int64) {
	last, since := n.Load(), time.Now()
	for time.Since(since) < 300*time.Millisecond {
		time.Sleep(50 * time.Millisecond)
		if v := n.Load(); v != last {
			last, since = v, time.Now()
		}
	}
}

// runSubscribers connects subscribers to filter and counts what they
// receive; persistent ones with CleanSession 0.
func runSubscribers(t *target, subs []cred, filter string, qos byte, persistent bool) (received, sent *atomic.Int64, stop func(), err error) {
	received, sent = new(atomic.Int64), new(atomic.Int64)
	var conns []*conn
	stop = func() {
		for _, c := range conns {
			c.close()
		}
	}
	for i, s := range subs {
		c, err := dialSession(t.subAddr(), fmt.Sprintf("sub-%d", i), s.user, s.pass, 10*time.Second, !persistent)
		if err != nil {
			stop()
			return nil, nil, nil, fmt.Errorf("subscriber: %w", err)
		}
		if code, err := c.subscribe(filter, qos); err != nil || code > 2 {
			stop()
			return nil, nil, nil, fmt.Errorf("subscribe %s: code %d, %v", filter, code, err)
		}
		conns = append(conns, c)
		go func() {
			for {
				first, body, err := c.readPacket()
				if err != nil {
					return
				}
				if first>>4 != typePublish {
					continue
				}
				received.Add(1)
				if q, id := publishInfo(first, body); q == 1 {
					c.puback(id)
				}
			}
		}()
	}
	return received, sent, stop, nil
}

// fanoutRound: one publisher, many subscribers of its topic: deliveries per second.
func fanoutRound(t *target, pub cred, subs []cred, d time.Duration) outcome {
	received, _, stop, err := runSubscribers(t, subs, "bench/fan", 0, false)
	if err != nil {
		return outcome{failures: 1, note: err.Error()}
	}
	defer stop()
	c, err := dial(t.mqtt, "fan-pub", pub.user, pub.pass, 10*time.Second)
	if err != nil {
		return outcome{failures: 1, note: err.Error()}
	}
	defer c.close()
	payload := make([]byte, 64)
	start := time.Now()
	var sent int64
	for n := 1; time.Since(start) < d; n++ {
		for range 16 {
			c.publish("bench/fan", 0, payload)
		}
		c.w.Flush()
		sent += 16
		if n%64 == 0 { // keep the backlog in socket buffers bounded
			if err := c.ping(); err != nil {
				return outcome{failures: 1, note: err.Error()}
			}
		}
	}
	el := time.Since(start)
	if err := c.ping(); err != nil {
		return outcome{failures: 1, note: err.Error()}
	}
	settle(received)
	got := received.Load()
	return outcome{value: float64(got) / el.Seconds(), ops: float64(got), expected: sent * int64(len(subs)), delivered: got,
		note: fmt.Sprintf("%d published, %d of %d deliveries (%.1f%%)", sent, got, sent*int64(len(subs)), 100*float64(got)/float64(sent*int64(len(subs))))}
}

// queryRound: signed QueryToken requests (broker key) from 32 keep-alive
// connections. Requests are signed before the round, each with its own
// nonce, and sent over a bare HTTP/1.1 client, so that the generator's
// cost stays out of the server's figure.
//
// With pace > 0 the requests go out at that total rate instead of as fast
// as answers come (a worker that falls behind sends at once), and the value
// is the p99 latency in ms at that load.
func queryRound(t *target, tok string, d time.Duration, estimate, pace float64) outcome {
	n := int(max(estimate, pace, 20000)*d.Seconds()*1.5) + 1000
	bodies := make([][]byte, n)
	host := strings.TrimPrefix(t.api.Endpoint, "http://")
	for i := range bodies {
		ps := map[string]string{
			"Action": "QueryToken", "Format": "JSON", "Version": api.APIVersion, "AccessKeyId": brokerID,
			"SignatureMethod": api.SignatureHMACSHA1, "SignatureVersion": "1.0",
			"SignatureNonce": fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i), "Timestamp": time.Now().UTC().Format("2006-01-02T15:04:05Z"),
			"InstanceId": instance, "Token": tok,
		}
		ps["Signature"] = api.Sign(http.MethodPost, api.SignatureHMACSHA1, brokerSecret, ps)
		form := url.Values{}
		for k, v := range ps {
			form.Set(k, v)
		}
		enc := form.Encode()
		bodies[i] = fmt.Appendf(nil, "POST / HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s", host, len(enc), enc)
	}
	var next atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var failed atomic.Int64
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, err := net.Dial("tcp", host)
			if err != nil {
				failed.Add(1)
				return
			}
			defer nc.Close()
			r := bufio.NewReader(nc)
			var buf []byte
			var mine []time.Duration
			due := time.Now()
			for time.Now().Before(deadline) {
				i := int(next.Add(1)) - 1
				if i >= len(bodies) {
					break
				}
				if pace > 0 {
					due = due.Add(time.Duration(float64(time.Second) * 32 / pace))
					if wait := time.Until(due); wait > 0 {
						time.Sleep(wait)
					}
				}
				t0 := time.Now()
				if _, err := nc.Write(bodies[i]); err != nil {
					failed.Add(1)
					return
				}
				status, body, err := readResponse(r, buf[:0])
				if err != nil {
					failed.Add(1)
					return
				}
				buf = body
				if status != 200 || !bytes.Contains(body, []byte(`"TokenStatus":true`)) {
					failed.Add(1)
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(start)
	slices.Sort(lat)
	if len(lat) == 0 {
		return outcome{failures: failed.Load(), note: "no answers"}
	}
	p99 := lat[len(lat)*99/100]
	note := fmt.Sprintf("%.0f requests/s, p50 %v, p99 %v", float64(len(lat))/el.Seconds(), lat[len(lat)/2].Round(10*time.Microsecond), p99.Round(10*time.Microsecond))
	if pace > 0 {
		return outcome{value: float64(p99.Microseconds()) / 1000, failures: failed.Load(), note: note}
	}
	return outcome{value: float64(len(lat)) / el.Seconds(), ops: float64(len(lat)), failures: failed.Load(), note: note}
}

// readResponse reads one HTTP/1.1 response with a Content-Length (what
// tokenmq's API sends) and returns its status and its body, appended to
// buf. It is the generator's side of queryRound: net/http's ReadResponse
// allocates a header map and more per response, CPU the server then does
// not get on a machine the two share.
func readResponse(r *bufio.Reader, buf []byte) (int, []byte, error) {
	status, length := 0, -1
	for first := true; ; first = false {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return 0, buf, err
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case first:
			// "HTTP/1.1 200 OK"
			if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
				return 0, buf, fmt.Errorf("not an HTTP/1.x status line: %q", line)
			}
			status = atoiBytes(line[9:12])
		case len(line) == 0:
			if length < 0 {
				return 0, buf, errors.New("response without Content-Length")
			}
			n := len(buf)
			buf = slices.Grow(buf, length)[:n+length]
			_, err := io.ReadFull(r, buf[n:])
			return status, buf, err
		default:
			name, value, ok := bytes.Cut(line, []byte(":"))
			if ok && bytes.EqualFold(name, []byte("Content-Length")) {
				length = atoiBytes(bytes.TrimSpace(value))
			}
		}
	}
}

// atoiBytes parses a non-negative decimal; -1 if b is not one.
func atoiBytes(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// revokeRound: n clients on one token; RevokeToken; how long until each
// client's socket is closed by the broker. The value is the p99 in ms.
func revokeRound(t *target, n int) outcome {
	creds, err := t.issue(1, []string{"bench/#"}, "R,W", "rv")
	if err != nil {
		return outcome{failures: 1, note: err.Error()}
	}
	closedAt := make([]time.Time, n)
	var wg sync.WaitGroup
	var failed atomic.Int64
	conns := make([]*conn, n)
	var dialWG sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := range n {
		dialWG.Add(1)
		sem <- struct{}{}
		go func() {
			defer dialWG.Done()
			defer func() { <-sem }()
			c, err := dial(t.mqtt, fmt.Sprintf("rv-%d", i), creds[0].user, creds[0].pass, 10*time.Second)
			if err != nil {
				failed.Add(1)
				return
			}
			conns[i] = c
		}()
	}
	dialWG.Wait()
	for i, c := range conns {
		if c == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, _, err := c.readPacket(); err != nil {
					closedAt[i] = time.Now()
					return
				}
			}
		}()
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_, err = t.api.RevokeToken(ctx, instance, creds[0].pass)
	cancel()
	if err != nil {
		return outcome{failures: 1, note: err.Error()}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		for _, c := range conns {
			if c != nil {
				c.nc.Close()
			}
		}
		<-done
	}
	var lat []time.Duration
	for i, at := range closedAt {
		if conns[i] != nil {
			lat = append(lat, at.Sub(start))
		}
	}
	if len(lat) == 0 {
		return outcome{failures: failed.Load(), note: "no client connected"}
	}
	slices.Sort(lat)
	p99 := lat[len(lat)*99/100]
	return outcome{value: float64(p99.Microseconds()) / 1000, failures: failed.Load(),
		note: fmt.Sprintf("%d clients: p50 %v, max %v", len(lat), lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))}
}

// memoryRound: RSS growth of the broker process for n idle clients (KiB).
func joinNonEmpty(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "; ")
}
