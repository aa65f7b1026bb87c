package tokenauth

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/internal/testkit"
	"github.com/tokenmq/tokenmq/internal/tokentest"
	"github.com/tokenmq/tokenmq/token"
)

// The core's tests run against a real token service (bbolt store, keyring)
// through a switch that can make it unreachable, and record what the core
// asks of its adapter.

const testInstance = "inst-a"

// flaky is the token service as a Validator and RevocationFeed, with an
// outage switch.
type flaky struct {
	svc     *token.Service
	down    atomic.Bool
	reports atomic.Int64 // ReportClients calls
}

var errDown = errors.New("connection refused")

func (f *flaky) Validate(ctx context.Context, inst, tok string) (token.Grant, error) {
	if f.down.Load() {
		return token.Grant{}, errDown
	}
	return f.svc.Validate(ctx, inst, tok)
}

func (f *flaky) Feed(ctx context.Context, inst string, after uint64, wait time.Duration) (token.FeedPage, error) {
	if f.down.Load() {
		return token.FeedPage{}, errDown
	}
	return f.svc.Feed(ctx, inst, after, wait)
}

// fixtureRegistry in a Config asks newFixture for its token service as the
// registry.
type fixtureRegistry struct{ ClientRegistry }

func (f *flaky) ReportClients(ctx context.Context, r token.ClientReport) error {
	f.reports.Add(1)
	if f.down.Load() {
		return errDown
	}
	return f.svc.ReportClients(ctx, r)
}

// recClient is the adapter's side of a connection, recording every call.
type recClient struct {
	mu          sync.Mutex
	notices     []Notice
	disconnects []Cause
	closes      []Cause
	restricts   []*Rights
	block       chan struct{} // if set, Disconnect waits for it (a stuck socket)
}

func (c *recClient) Notify(n Notice) {
	c.mu.Lock()
	c.notices = append(c.notices, n)
	c.mu.Unlock()
}

func (c *recClient) Disconnect(cause Cause) {
	if c.block != nil {
		<-c.block
	}
	c.mu.Lock()
	c.disconnects = append(c.disconnects, cause)
	c.mu.Unlock()
}

func (c *recClient) Close(cause Cause) {
	c.mu.Lock()
	c.closes = append(c.closes, cause)
	c.mu.Unlock()
}

func (c *recClient) Restrict(r *Rights) {
	c.mu.Lock()
	c.restricts = append(c.restricts, r)
	c.mu.Unlock()
}

func (c *recClient) snapshot() (notices []Notice, disconnects, closes []Cause, restricts []*Rights) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Notice(nil), c.notices...), append([]Cause(nil), c.disconnects...),
		append([]Cause(nil), c.closes...), append([]*Rights(nil), c.restricts...)
}

// waitKicked waits until the client was disconnected (or closed) and
// returns the notices it got.
func (c *recClient) waitKicked(t *testing.T, want Cause) []Notice {
	t.Helper()
	testkit.WaitFor(t, 3*time.Second, "the disconnect", func() bool {
		_, d, cl, _ := c.snapshot()
		return len(d)+len(cl) > 0
	})
	n, d, cl, _ := c.snapshot()
	if got := append(d, cl...)[0]; got != want {
		t.Fatalf("disconnected for %v, want %v", got, want)
	}
	return n
}

// recObserver records what the core reports.
type recObserver struct {
	mu     sync.Mutex
	events []string
}

func (o *recObserver) add(e string) { o.mu.Lock(); o.events = append(o.events, e); o.mu.Unlock() }
func (o *recObserver) ConnectDecision(result, reason string) {
	o.add("connect:" + result + ":" + reason)
}
func (o *recObserver) Validation(outcome string, _ time.Duration) { o.add("validation:" + outcome) }
func (o *recObserver) ACLDenied(action string)                    { o.add("denied:" + action) }
func (o *recObserver) Disconnected(reason string)                 { o.add("disconnected:" + reason) }
func (o *recObserver) Renewal(result string)                      { o.add("renewal:" + result) }
func (o *recObserver) RevocationApplied(time.Duration)            { o.add("revocation") }

func (o *recObserver) has(e string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, x := range o.events {
		if x == e {
			return true
		}
	}
	return false
}

type fixture struct {
	t   *testing.T
	ts  *tokentest.Service
	val *flaky
	a   *Authority
	obs *recObserver
}

// newFixture starts an Authority for testInstance over a fresh token
// service whose clock stands at the start of the test (tokens are checked
// against it; the session timers run on real time). edit may change the
// configuration before New.
func newFixture(t *testing.T, edit func(*Config)) *fixture {
	t.Helper()
	ts := tokentest.NewService(t, time.Now(), token.ServiceConfig{MinTTL: time.Millisecond})
	f := &fixture{t: t, ts: ts, val: &flaky{svc: ts.Service}, obs: &recObserver{}}
	cfg := Config{InstanceID: testInstance, Validator: f.val, Feed: f.val, AllowPlain: true,
		FeedWait: time.Second, Observer: f.obs, Logger: slog.New(slog.DiscardHandler)}
	if edit != nil {
		edit(&cfg)
	}
	if _, ok := cfg.Registry.(fixtureRegistry); ok {
		cfg.Registry = f.val
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.Start()
	t.Cleanup(a.Close)
	f.a = a
	return f
}

// apply issues a token of testInstance from access key AK1.
func (f *fixture) apply(actions token.Actions, ttl time.Duration, resources ...string) (string, *token.Record) {
	f.t.Helper()
	return f.applyBound(nil, actions, ttl, resources...)
}

// applyBound issues a token bound to client IDs.
func (f *fixture) applyBound(clientIDs []string, actions token.Actions, ttl time.Duration, resources ...string) (string, *token.Record) {
	f.t.Helper()
	tok, rec, err := f.ts.Apply(context.Background(), token.ApplyRequest{InstanceID: testInstance, AccessKeyID: "AK1",
		Resources: resources, ClientIDs: clientIDs, Actions: actions, ExpireTime: f.ts.Clock.Now().Add(ttl)})
	if err != nil {
		f.t.Fatal(err)
	}
	return tok, rec
}

func (f *fixture) revoke(tok string) {
	f.t.Helper()
	if _, err := f.ts.Revoke(context.Background(), testInstance, tok); err != nil {
		f.t.Fatal(err)
	}
}

// connect makes a CONNECT with username user and password pass.
func (f *fixture) connect(id, user, pass string) (*Session, *recClient, *Refusal) {
	c := &recClient{}
	s, ref := f.a.Connect(ConnectRequest{ClientID: id, Remote: "127.0.0.1:1", Username: []byte(user),
		Password: []byte(pass), HasPassword: pass != ""}, c)
	return s, c, ref
}

// mustConnect connects and establishes a session, or fails the test.
func (f *fixture) mustConnect(id, user, pass string) (*Session, *recClient) {
	f.t.Helper()
	s, c, ref := f.connect(id, user, pass)
	if ref != nil {
		f.t.Fatalf("connect %s: %v", id, ref)
	}
	s.Establish()
	return s, c
}
