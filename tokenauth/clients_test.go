package tokenauth

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/internal/testkit"
	"github.com/tokenmq/tokenmq/token"
)

func reporting(c *Config) {
	c.Registry = fixtureRegistry{}
	c.ReportFlush, c.ReportInterval = 10*time.Millisecond, 50*time.Millisecond
}

// listed returns the client IDs the token service lists, sorted.
func (f *fixture) listed() []string {
	cs, err := f.ts.Clients(context.Background(), testInstance, token.ClientFilter{})
	if err != nil {
		f.t.Fatal(err)
	}
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.ClientID)
	}
	return ids
}

func (f *fixture) waitListed(n int) {
	f.t.Helper()
	testkit.WaitFor(f.t, 5*time.Second, fmt.Sprintf("%d connections listed", n), func() bool { return len(f.listed()) == n })
}

func TestReportsFollowConnections(t *testing.T) {
	f := newFixture(t, reporting)

	tokA, recA := f.apply(token.ActionRead|token.ActionWrite, time.Hour, "a/#")
	tokB, _ := f.apply(token.ActionRead, time.Hour, "b/#")
	s1, _ := f.mustConnect("one", "u", tokA)
	f.mustConnect("two", "u", tokB)
	f.waitListed(2)
	cs, _ := f.ts.Clients(context.Background(), testInstance, token.ClientFilter{TokenID: &recA.ID})
	if len(cs) != 1 || cs[0].ClientID != "one" || cs[0].Remote != "127.0.0.1:1" || cs[0].Broker != f.a.BrokerID() {
		t.Fatalf("filtered by token: %+v", cs)
	}
	s1.End()
	f.waitListed(1)

	// The service loses its picture of this broker (a report out of
	// sequence, as after a restart of the service): the broker is asked for
	// a full one, in chunks, and everything is listed again.
	var sessions []*Session
	for i := range reportChunk + 100 {
		s, _ := f.mustConnect(fmt.Sprintf("bulk-%04d", i), "u", tokA)
		sessions = append(sessions, s)
	}
	f.waitListed(reportChunk + 101)
	if err := f.ts.ReportClients(context.Background(), token.ClientReport{InstanceID: testInstance, Broker: f.a.BrokerID(), Seq: 1 << 40}); err == nil {
		t.Fatal("a report out of sequence was taken")
	}
	f.waitListed(0) // it was dropped ...
	f.waitListed(reportChunk + 101)

	// An outage of the service: what changed meanwhile arrives after it.
	f.val.down.Store(true)
	for _, s := range sessions[:50] {
		s.End()
	}
	time.Sleep(100 * time.Millisecond)
	f.val.down.Store(false)
	f.waitListed(reportChunk + 51)
}

// A registry that keeps failing is retried once a ReportInterval, not
// sent the whole list every flush.
func TestReportsBackOffWhileTheRegistryFails(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		reporting(c)
		c.ReportInterval = 100 * time.Millisecond
	})
	f.val.down.Store(true)
	start := f.val.reports.Load()
	time.Sleep(550 * time.Millisecond)
	if n := f.val.reports.Load() - start; n > 8 {
		t.Fatalf("%d reports in 550 ms to a failing registry (flush 10 ms, interval 100 ms)", n)
	}
	f.val.down.Store(false)
	tok, _ := f.apply(token.ActionRead, time.Hour, "a/#")
	f.mustConnect("one", "u", tok)
	f.waitListed(1)
}

func TestReportsExpireWhenABrokerStops(t *testing.T) {
	f := newFixture(t, reporting)
	tok, _ := f.apply(token.ActionRead, time.Hour, "a/#")
	f.mustConnect("one", "u", tok)
	f.waitListed(1)
	f.a.Close()
	f.ts.Clock.Advance(token.DefaultReportTTL + time.Second)
	if ids := f.listed(); len(ids) != 0 {
		t.Fatalf("a broker that stopped reporting is still listed: %v", ids)
	}
}

// A kick disconnects every connection of the client ID with 0x98, sends
// no token notice (the tokens are fine), leaves other client IDs alone and
// asks the adapter to discard an offline session. An Authority that starts
// after the kick only discards: its own connections came after it.
func TestKickAppliesToTheConnectionsOfItsTime(t *testing.T) {
	var mu sync.Mutex
	var discarded []string
	discard := func(c *Config) {
		c.Discard = func(id string, at time.Time) { mu.Lock(); discarded = append(discarded, id); mu.Unlock() }
	}
	f := newFixture(t, discard)
	tok, _ := f.apply(token.ActionRead|token.ActionWrite, time.Hour, "a/#")
	_, c1 := f.mustConnect("k1", "u", tok)
	_, c2 := f.mustConnect("k1", "u", tok) // a takeover in progress: both are kicked
	_, other := f.mustConnect("k2", "u", tok)
	if _, _, err := f.ts.KickClient(context.Background(), testInstance, "k1"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*recClient{c1, c2} {
		if n := c.waitKicked(t, CauseKicked); len(n) != 0 {
			t.Fatalf("a kicked connection got notices: %+v", n)
		}
	}
	if CauseKicked.Reason() != ReasonAdministrativeAction {
		t.Fatalf("kick reason %v", CauseKicked.Reason())
	}
	testkit.WaitFor(t, 2*time.Second, "the adapter to be asked to discard", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Equal(discarded, []string{"k1"})
	})
	if _, d, cl, _ := other.snapshot(); len(d)+len(cl) != 0 {
		t.Fatal("a connection of another client ID was kicked")
	}

	// A second Authority on the same service, started after the kick.
	time.Sleep(5 * time.Millisecond)
	var later []string
	a2, err := New(Config{InstanceID: testInstance, Validator: f.val, Feed: f.val, AllowPlain: true, FeedWait: time.Second,
		Discard: func(id string, _ time.Time) { mu.Lock(); later = append(later, id); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	c3 := &recClient{}
	s3, ref := a2.Connect(ConnectRequest{ClientID: "k1", Username: []byte("u"), Password: []byte(tok), HasPassword: true}, c3)
	if ref != nil {
		t.Fatal(ref)
	}
	s3.Establish()
	a2.Start()
	t.Cleanup(a2.Close)
	testkit.WaitFor(t, 2*time.Second, "the replayed kick", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Equal(later, []string{"k1"})
	})
	time.Sleep(50 * time.Millisecond)
	if _, d, cl, _ := c3.snapshot(); len(d)+len(cl) != 0 {
		t.Fatal("a connection made after the kick was kicked by its replay")
	}
}

// Reports are cut to fit a request body, whatever the client IDs.
func TestReportChunks(t *testing.T) {
	long := make([]token.ClientInfo, 50)
	for i := range long {
		long[i] = token.ClientInfo{ClientID: string(make([]byte, 65535)), TokenIDs: make([]token.ID, 4)}
	}
	if n := chunkLen(long); n < 1 || n*8*65535 > 1<<20 {
		t.Fatalf("%d client IDs of 64 KiB in one report", n)
	}
	short := make([]token.ClientInfo, 3*reportChunk)
	if n := chunkLen(short); n != reportChunk {
		t.Fatalf("chunk of %d short entries, want %d", n, reportChunk)
	}
	if n := chunkLen(short[:5]); n != 5 {
		t.Fatalf("chunk of %d, want 5", n)
	}
}
