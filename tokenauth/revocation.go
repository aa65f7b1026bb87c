package tokenauth

import (
	"context"
	"time"

	"github.com/tokenmq/tokenmq/token"
)

// RevocationFeed is where the core hears of revocations (SPEC §3.5):
// token.Service in process, api.Client over HTTP.
type RevocationFeed interface {
	Feed(ctx context.Context, instanceID string, after uint64, wait time.Duration) (token.FeedPage, error)
}

// index records which sessions rely on which tokens, for revocation kicks.
func (a *Authority) index(s *Session) {
	ids := s.TokenIDs()
	a.idxMu.Lock()
	for _, id := range ids {
		m := a.byToken[id]
		if m == nil {
			m = make(map[*Session]struct{})
			a.byToken[id] = m
		}
		m[s] = struct{}{}
	}
	a.idxMu.Unlock()
}

func (a *Authority) unindex(s *Session, ids []token.ID) {
	a.idxMu.Lock()
	for _, id := range ids {
		if m := a.byToken[id]; m != nil {
			delete(m, s)
			if len(m) == 0 {
				delete(a.byToken, id)
			}
		}
	}
	a.idxMu.Unlock()
}

// Revoke applies a revocation: the token is refused from now on and every
// connection relying on it is notified and disconnected.
func (a *Authority) Revoke(rv token.Revocation) {
	a.cache.MarkRevoked(rv.ID, rv.ExpireTime)
	a.obs.RevocationApplied(time.Since(rv.RevokeTime))
	a.idxMu.Lock()
	var victims []*Session
	for s := range a.byToken[rv.ID] {
		victims = append(victims, s)
	}
	a.idxMu.Unlock()
	for _, s := range victims {
		if typ := s.heldType(rv.ID); typ != 0 {
			s.Kick(CauseRevoked, typ, "token revoked")
		}
	}
}

// follow keeps up with the revocation feed, from the start of the log, and
// after an outage from where it stopped.
func (a *Authority) follow() {
	defer a.done.Done()
	stopped, cancelAll := context.WithCancel(context.Background())
	defer cancelAll()
	go func() { <-a.stop; cancelAll() }()
	var next uint64
	headKnown := false
	backoff := 50 * time.Millisecond
	for stopped.Err() == nil {
		ctx, cancel := context.WithTimeout(stopped, a.cfg.FeedWait+10*time.Second)
		page, err := a.cfg.Feed.Feed(ctx, a.cfg.InstanceID, next, a.cfg.FeedWait)
		cancel()
		if stopped.Err() != nil {
			return
		}
		if err != nil {
			if a.feedHealthy.Swap(false) {
				a.log.Warn("revocation feed unavailable; retrying", "err", err)
			}
			select {
			case <-stopped.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 500*time.Millisecond) // catch up within a second of the service's return
			continue
		}
		if !a.feedHealthy.Swap(true) && next > 0 {
			a.log.Info("revocation feed back; caught up", "from", next, "to", page.Next)
		}
		backoff = 50 * time.Millisecond
		if page.Reset {
			a.log.Warn("revocation log restarted; dropping cached answers")
			a.cache.Purge()
			headKnown = false // what the new log holds is from before we saw it
		}
		if !headKnown {
			a.startHead, headKnown = page.Head, true
		}
		for _, rv := range page.Revocations {
			a.Revoke(rv)
		}
		for _, k := range page.Kicks {
			a.applyKick(k)
		}
		next = page.Next
	}
}
