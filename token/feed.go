package token

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Grant is what a valid token allows: what a broker needs to know of it.
type Grant struct {
	TokenID     ID
	InstanceID  string
	AccessKeyID string
	Actions     Actions
	Resources   []string
	ClientIDs   []string // client IDs (or "prefix*") that may use it; none: any (see ClientAllowed)
	ExpireTime  time.Time
}

// Validate is Query for a broker: the token's grant if it is valid for
// instanceID, a denial (see IsDenied) or an outage error.
func (s *Service) Validate(ctx context.Context, instanceID, tok string) (Grant, error) {
	rec, err := s.Query(ctx, instanceID, tok)
	if err != nil {
		return Grant{}, err
	}
	return rec.Grant(), nil
}

// Grant is what the record allows, whether or not it is still valid.
func (r *Record) Grant() Grant {
	return Grant{
		TokenID: r.ID, InstanceID: r.InstanceID, AccessKeyID: r.AccessKeyID,
		Actions: r.Actions, Resources: r.Resources, ClientIDs: r.ClientIDs, ExpireTime: r.ExpireTime,
	}
}

// FeedPage is one answer of the revocation feed.
type FeedPage struct {
	// Revocations of the instance asked for, in log order.
	Revocations []Revocation
	// Kicks of the instance's client IDs (KickClient), in log order.
	Kicks []Revocation
	// Next is the sequence number to ask after next time: the last entry
	// looked at, whichever instance it was of.
	Next uint64
	// Head is the position of the log's last entry when the call began:
	// the entries up to it were logged before it. A follower's first call
	// tells it which kicks are from before it started (token.Revocation).
	Head uint64
	// Reset is true when the log restarted below the position asked for
	// (a new store): the follower may have missed revocations and should
	// drop what it cached.
	Reset bool
}

// feedPageSize bounds one feed answer.
const feedPageSize = 500

// notifier is a broadcast: wait channels are closed on the next notify.
type notifier struct {
	mu      sync.Mutex
	ch      chan struct{}
	waiters atomic.Int64 // Feed calls blocked in a wait
}

func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

// NotifyRevocations wakes the Feed calls waiting for a revocation. Revoke
// does it for revocations made here; a store shared by several services
// calls it for theirs (pgstore.Store.Watch).
func (s *Service) NotifyRevocations() { s.revoked.notify() }

// Waiters returns how many Feed calls are waiting for a revocation.
func (s *Service) Waiters() int { return int(s.revoked.waiters.Load()) }

func (n *notifier) notify() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
}

// Feed returns the revocations of instanceID logged after position after.
// With wait > 0 and nothing new, it waits up to wait for a revocation
// (long poll) and returns an empty page if none comes. A broker follows the
// feed to drop revoked tokens from its cache and disconnect their clients,
// and catches up from its last position after an outage.
func (s *Service) Feed(ctx context.Context, instanceID string, after uint64, wait time.Duration) (FeedPage, error) {
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	var first uint64 // the head when the call began
	for i := 0; ; i++ {
		changed := s.revoked.wait() // before reading, so no revocation slips between
		head, err := s.store.RevocationHead(ctx)
		if err != nil {
			return FeedPage{}, fmt.Errorf("revocation feed: %w", err)
		}
		if i == 0 {
			first = head
		}
		page := FeedPage{Next: after, Head: first}
		if after > head {
			page.Reset, page.Next, after = true, 0, 0
		}
		revs, err := s.store.Revocations(ctx, after, feedPageSize)
		if err != nil {
			return FeedPage{}, fmt.Errorf("revocation feed: %w", err)
		}
		for _, r := range revs {
			page.Next = r.Seq
			switch {
			case r.InstanceID != instanceID:
			case r.IsKick():
				page.Kicks = append(page.Kicks, r)
			default:
				page.Revocations = append(page.Revocations, r)
			}
		}
		if len(revs) > 0 || page.Reset || timeout == nil {
			return page, nil
		}
		s.revoked.waiters.Add(1)
		select {
		case <-changed:
			s.revoked.waiters.Add(-1)
		case <-timeout:
			s.revoked.waiters.Add(-1)
			return page, nil
		case <-ctx.Done():
			s.revoked.waiters.Add(-1)
			return FeedPage{}, ctx.Err()
		}
	}
}
