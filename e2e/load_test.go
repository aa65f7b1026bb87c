package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/api"
	"github.com/tokenmq/tokenmq/broker"
	"github.com/tokenmq/tokenmq/config"
	"github.com/tokenmq/tokenmq/internal/testkit"
)

// raiseFileLimit lifts the open-files limit to its hard maximum: thousands
// of connections, each two sockets in one process.
func raiseFileLimit(t *testing.T) uint64 {
	t.Helper()
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		t.Fatal(err)
	}
	l.Cur = l.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		t.Fatal(err)
	}
	return l.Cur
}

// splitInProcess starts a token service and a broker that calls it over
// HTTP, both in this process on 127.0.0.1:0.
func splitInProcess(t *testing.T) (tokens, brk *broker.Server, admin *api.Client) {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	tc := config.Default()
	tc.Role, tc.DataDir, tc.APIAddr = config.RoleTokens, t.TempDir(), "127.0.0.1:0"
	tc.API.RateLimits = config.RateLimits{}
	tc.SetDefaults()
	tokens, err := broker.New(broker.Options{Config: tc, Logger: quiet, AccessKeys: []api.AccessKey{
		{ID: adminID, Secret: adminSecret, Role: api.RoleAdmin},
		{ID: brokerKeyID, Secret: brokerKeySecret, Role: api.RoleBroker}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := tokens.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tokens.Shutdown(context.Background()) })
	bc := config.Default()
	bc.Role, bc.DataDir = config.RoleBroker, t.TempDir()
	bc.APIAddr, bc.MQTTAddr, bc.WSAddr = "127.0.0.1:0", "127.0.0.1:0", ""
	bc.TokenService = "http://" + tokens.APIAddr().String()
	bc.SetDefaults()
	brk, err = broker.New(broker.Options{Config: bc, Logger: quiet, ClientKey: api.AccessKey{ID: brokerKeyID, Secret: brokerKeySecret}})
	if err != nil {
		t.Fatal(err)
	}
	if err := brk.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		brk.Shutdown(ctx)
	})
	admin = &api.Client{Endpoint: "http://" + tokens.APIAddr().String(), AccessKeyID: adminID, AccessKeySecret: adminSecret}
	return tokens, brk, admin
}

// ISSUE 4 — reconnect storm: thousands of clients from a thousand tokens
// connecting at once to a broker with a cold cache cost at most one
// QueryToken per distinct token (the token service's own counter), and every
// client gets in.
func TestReconnectStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	clients, distinct := 5000, 1000
	if raceEnabled {
		clients, distinct = 1000, 200 // the race detector's goroutine limit
	}
	if limit := raiseFileLimit(t); limit < uint64(2*clients+500) {
		t.Skipf("open-files limit %d is too low for %d connections", limit, clients)
	}
	tokens, brk, admin := splitInProcess(t)
	toks := make([]string, distinct)
	for i := range toks {
		toks[i] = applyWith(t, admin, fmt.Sprintf("fleet/%d/#", i), "R,W", time.Hour)
	}
	before := tokens.Service().Stats().Queries

	var refused, failed atomic.Int64
	conns := make(chan func(), clients)
	start := make(chan struct{})
	var wg sync.WaitGroup
	latencies := make([]time.Duration, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			t0 := time.Now()
			code, conn, err := rawConnect(brk.MQTTAddr("tcp"), fmt.Sprintf("storm-%d", i), "device", toks[i%distinct], 60*time.Second)
			latencies[i] = time.Since(t0)
			switch {
			case err != nil:
				failed.Add(1)
			case code != 0:
				refused.Add(1)
				conn.Close()
			default:
				conns <- func() { rawDisconnect(conn) }
			}
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(t0)
	close(conns)
	for c := range conns {
		c()
	}
	queries := tokens.Service().Stats().Queries - before
	slices.Sort(latencies)
	t.Logf("%d clients from %d tokens connected in %v (p50 %v, p99 %v); QueryToken calls: %d",
		clients, distinct, elapsed.Round(time.Millisecond), latencies[clients/2].Round(time.Millisecond),
		latencies[clients*99/100].Round(time.Millisecond), queries)
	if f, r := failed.Load(), refused.Load(); f+r > 0 {
		t.Fatalf("%d clients failed to connect and %d were refused", f, r)
	}
	if queries > int64(distinct) {
		t.Fatalf("%d QueryToken calls for %d distinct tokens", queries, distinct)
	}
	if st := brk.Authority().Cache().Stats(); st.Calls > int64(distinct) {
		t.Fatalf("the broker made %d validation calls for %d tokens", st.Calls, distinct)
	}
}

// randomToken returns a string shaped like a token (82 base64url
// characters) that no service issued.
func randomToken() string {
	b := make([]byte, 61)
	rand.Read(b)
	b[0] = 1 // the version byte, so it passes the shape check
	return base64.RawURLEncoding.EncodeToString(b)
}

// ISSUE 4 — garbage flood: CONNECTs with random and forged tokens cost no
// store lookups (they die at the MAC check, repeats in the negative cache),
// and legitimate clients connect within a bound while the flood runs.
func TestGarbageFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	e := startEnv(t)
	svc := e.srv.Service()
	valid := e.apply("dev/#", "R,W", time.Hour)
	forged := valid[:40] + "AAAA" + valid[44:]
	if forged == valid {
		forged = valid[:40] + "BBBB" + valid[44:]
	}

	measure := func(n int) []time.Duration {
		var lat []time.Duration
		for i := range n {
			tok := e.apply("dev/#", "R,W", time.Hour) // a new token: a real lookup each time
			t0 := time.Now()
			code, conn, err := rawConnect(e.mqtt, fmt.Sprintf("legit-%d-%d", n, i), "d", tok, 10*time.Second)
			lat = append(lat, time.Since(t0))
			if err != nil || code != 0 {
				t.Fatalf("legitimate client: code %d, %v", code, err)
			}
			rawDisconnect(conn)
		}
		slices.Sort(lat)
		return lat
	}
	quiet := measure(50)

	before := svc.Stats()
	stop := make(chan struct{})
	var flooded atomic.Int64
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				pass := randomToken()
				switch i % 3 {
				case 1:
					pass = forged // the same forgery again and again
				case 2:
					pass = fmt.Sprintf("garbage-%d-%d", w, i) // not even token-shaped
				}
				if code, conn, err := rawConnect(e.mqtt, fmt.Sprintf("flood-%d-%d", w, i), "x", pass, 10*time.Second); err == nil {
					if code != 4 {
						t.Errorf("garbage CONNECT answered %d, want 4", code)
					}
					conn.Close()
				}
				flooded.Add(1)
			}
		}()
	}
	testkit.WaitFor(t, 10*time.Second, "the flood to start", func() bool { return flooded.Load() > 500 })
	loaded := measure(50)
	close(stop)
	wg.Wait()
	after := svc.Stats()

	lookups := after.StoreLookups - before.StoreLookups
	t.Logf("flood: %d garbage CONNECTs; legitimate connect p50/p99 %v/%v quiet, %v/%v under flood; store lookups during the flood %d (legitimate clients: 50)",
		flooded.Load(), quiet[25].Round(time.Microsecond), quiet[49].Round(time.Microsecond),
		loaded[25].Round(time.Microsecond), loaded[49].Round(time.Microsecond), lookups)
	if lookups != 50 {
		t.Fatalf("%d store lookups during the flood, want exactly the 50 legitimate ones", lookups)
	}
	if bound := 250 * time.Millisecond; loaded[49] > bound {
		t.Fatalf("legitimate p99 connect under flood %v, over the %v bound", loaded[49], bound)
	}
}

// ISSUE 16 — a storm of new tokens at the descriptor limit, split roles: a
// broker whose limit is 1,200 descriptors (so broker.max_connections
// defaults to 1,061) takes 1,061 clients with a token each, all connecting
// at once with a cold cache, and every one gets in with one QueryToken
// each. The broker's calls to the token service share a bounded pool of
// connections; one connection per waiting CONNECT would spend the
// descriptors kept in reserve and refuse clients with EMFILE.
func TestSplitStormAtTheDescriptorLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("needs prlimit (util-linux)")
	}
	const limit = 1200
	clients := limit - 64 - limit/16
	raiseFileLimit(t)
	cfg := writeConfig(t, "access_keys:\n  - {id: "+brokerKeyID+", secret: "+brokerKeySecret+", role: broker}\n"+
		"api:\n  rate_limits: {apply_token: 0, query_token: 0, other: 0}\n")
	tokens := startTokenmq(t, "--config", cfg, "--role", "tokens", "--api-addr", "127.0.0.1:0", "--data-dir", t.TempDir())
	brk := startTokenmqUnder(t, []string{"prlimit", fmt.Sprintf("--nofile=%d:%d", limit, limit)}, brokerKeyID, brokerKeySecret,
		"--role", "broker", "--token-service", tokens.apiURL,
		"--api-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--ws-addr", "", "--data-dir", t.TempDir())
	testkit.WaitFor(t, 5*time.Second, "the broker's MQTT address", func() bool { return brk.mqttAddr() != "" })
	admin := &api.Client{Endpoint: tokens.apiURL, AccessKeyID: adminID, AccessKeySecret: adminSecret}
	toks := make([]string, clients)
	for i := range toks {
		toks[i] = applyWith(t, admin, fmt.Sprintf("fleet/%d/#", i), "R,W", time.Hour)
	}
	var wg sync.WaitGroup
	before := metric(t, tokens.apiURL, "tokenmq_token_queries_total")

	start := make(chan struct{})
	var failed, refused atomic.Int64
	conns := make(chan net.Conn, clients)
	for i, tok := range toks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			code, c, err := rawConnect(brk.mqttAddr(), fmt.Sprintf("storm-%d", i), "device", tok, 60*time.Second)
			switch {
			case err != nil:
				failed.Add(1)
			case code != 0:
				refused.Add(1)
				c.Close()
			default:
				conns <- c
			}
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	close(conns)
	for c := range conns {
		defer c.Close()
	}
	queries := metric(t, tokens.apiURL, "tokenmq_token_queries_total") - before
	t.Logf("%d clients with new tokens at a %d-descriptor limit: in %v, %v QueryToken calls", clients, limit, time.Since(t0).Round(time.Millisecond), queries)
	if f, r := failed.Load(), refused.Load(); f+r > 0 {
		t.Fatalf("%d clients failed to connect and %d were refused\n%s", f, r, brk.logs())
	}
	if queries != float64(clients) {
		t.Fatalf("%v QueryToken calls for %d new tokens", queries, clients)
	}
}
