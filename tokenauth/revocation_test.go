package tokenauth

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/internal/testkit"
	"github.com/tokenmq/tokenmq/token"
)

// A revocation made while the feed was unreachable is acted on once it is
// back (catch-up from where the follower stopped), and FeedHealthy says so.
func TestFeedCatchesUpAfterOutage(t *testing.T) {
	f := newFixture(t, nil)
	tok, _ := f.apply(token.ActionReadWrite, time.Hour, "a/#")
	early, _ := f.apply(token.ActionReadWrite, time.Hour, "a/#")
	_, cEarly := f.mustConnect("early", "d", early)
	f.revoke(early) // the follower is past this one before the outage
	cEarly.waitKicked(t, CauseRevoked)
	testkit.WaitFor(t, 3*time.Second, "a healthy feed", f.a.FeedHealthy)
	_, c := f.mustConnect("dev", "d", tok)
	f.val.down.Store(true)
	testkit.WaitFor(t, 5*time.Second, "the feed to notice the outage", func() bool { return !f.a.FeedHealthy() })
	f.revoke(tok) // the service's own log has it; the broker cannot hear it
	time.Sleep(100 * time.Millisecond)
	if _, d, _, _ := c.snapshot(); len(d) != 0 {
		t.Fatal("kicked while the feed was down")
	}
	f.val.down.Store(false)
	c.waitKicked(t, CauseRevoked)
	testkit.WaitFor(t, 3*time.Second, "a healthy feed", f.a.FeedHealthy)
}

// resetFeed answers one page that says the log restarted.
type resetFeed struct {
	calls atomic.Int64
}

func (r *resetFeed) Feed(ctx context.Context, _ string, after uint64, _ time.Duration) (token.FeedPage, error) {
	if r.calls.Add(1) == 1 {
		return token.FeedPage{Reset: true, Next: 0}, nil
	}
	<-ctx.Done()
	return token.FeedPage{Next: after}, ctx.Err()
}

// A log that restarted (a new store) drops every cached answer: the
// follower may have missed revocations.
func TestFeedResetPurgesCache(t *testing.T) {
	feed := &resetFeed{}
	ts := newFixture(t, nil).ts // a service to validate against
	v := &flaky{svc: ts.Service}
	a, err := New(Config{InstanceID: testInstance, Validator: v, Feed: feed, AllowPlain: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := ts.Apply(t.Context(), token.ApplyRequest{InstanceID: testInstance, AccessKeyID: "AK1",
		Resources: []string{"a"}, Actions: token.ActionRead, ExpireTime: ts.Clock.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Cache().Lookup(t.Context(), tok); err != nil || a.Cache().Len() != 1 {
		t.Fatalf("lookup: %v, %d cached", err, a.Cache().Len())
	}
	a.Start()
	t.Cleanup(a.Close)
	testkit.WaitFor(t, 3*time.Second, "the cache to be purged", func() bool { return a.Cache().Len() == 0 })
}
