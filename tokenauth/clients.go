package tokenauth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"time"

	"github.com/tokenmq/tokenmq/token"
)

// Clients admin (SPEC §2.2): the Authority tells the token service which
// connections it holds (ClientRegistry), and applies the kicks it hears on
// the revocation feed to them.

// ClientRegistry is where an Authority reports its connections: the
// in-process token.Service, or api.Client over ReportClients. An error
// wrapping token.ErrResync asks for a full report.
type ClientRegistry interface {
	ReportClients(ctx context.Context, r token.ClientReport) error
}

// Report timing defaults.
const (
	// DefaultReportFlush is how soon connections that came or went are
	// reported.
	DefaultReportFlush = time.Second
	// DefaultReportInterval is how often an Authority with nothing new
	// reports anyway (a heartbeat): well within token.DefaultReportTTL.
	DefaultReportInterval = 10 * time.Second
	// reportChunk bounds the connections in one report (a request body).
	reportChunk = 2000
)

// newBrokerID names this process in its reports: host, process and a
// random part, so that a restart is a new broker.
func newBrokerID() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	if host == "" {
		host = "broker"
	}
	return host + "-" + hex.EncodeToString(b[:])
}

// BrokerID returns the ID this Authority reports its connections under.
func (a *Authority) BrokerID() string { return a.cfg.BrokerID }

// track adds an admitted connection to what is reported.
func (a *Authority) track(s *Session) {
	a.connMu.Lock()
	a.connSeq++
	s.conn = a.connSeq
	a.conns[s.conn] = s
	if a.cfg.Registry != nil {
		a.added[s.conn] = struct{}{}
	}
	a.connMu.Unlock()
}

// retrack reports a connection again (its tokens changed: a renewal).
func (a *Authority) retrack(s *Session) {
	a.connMu.Lock()
	if a.conns[s.conn] == s && a.cfg.Registry != nil {
		a.added[s.conn] = struct{}{}
	}
	a.connMu.Unlock()
}

// untrack removes a connection that is gone.
func (a *Authority) untrack(s *Session) {
	a.connMu.Lock()
	defer a.connMu.Unlock()
	if a.conns[s.conn] != s {
		return
	}
	delete(a.conns, s.conn)
	if a.cfg.Registry != nil {
		delete(a.added, s.conn)
		a.gone = append(a.gone, s.conn)
	}
}

// Connections returns what the Authority would report now: its live
// connections, in no order.
func (a *Authority) Connections() []token.ClientInfo {
	a.connMu.Lock()
	all := make([]*Session, 0, len(a.conns))
	for _, s := range a.conns {
		all = append(all, s)
	}
	a.connMu.Unlock()
	out := make([]token.ClientInfo, len(all))
	for i, s := range all {
		out[i] = s.info()
	}
	return out
}

// info is the session as a report lists it.
func (s *Session) info() token.ClientInfo {
	return token.ClientInfo{Conn: s.conn, ClientID: s.clientID, Remote: s.remote, ProtocolVersion: s.protocol,
		TokenIDs: s.TokenIDs(), Since: s.since, Persistent: s.persistent, Broker: s.a.cfg.BrokerID}
}

// report keeps the registry up to date: what changed within ReportFlush,
// a heartbeat every ReportInterval, everything when the registry asks, and
// after a failure everything again one ReportInterval later (a token
// service that cannot take reports is not sent the whole list every
// second).
func (a *Authority) report() {
	defer a.done.Done()
	t := time.NewTicker(a.cfg.ReportFlush)
	defer t.Stop()
	var seq uint64
	full, healthy := true, true
	var last, retryAt time.Time
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
		}
		if time.Now().Before(retryAt) {
			continue // the registry failed: not a full report every flush
		}
		a.connMu.Lock()
		if !full && len(a.added) == 0 && len(a.gone) == 0 && time.Since(last) < a.cfg.ReportInterval {
			a.connMu.Unlock()
			continue
		}
		var sessions []*Session
		var gone []uint64
		if full {
			for _, s := range a.conns {
				sessions = append(sessions, s)
			}
		} else {
			for id := range a.added {
				sessions = append(sessions, a.conns[id])
			}
			gone = a.gone
		}
		clear(a.added)
		a.gone = nil
		a.connMu.Unlock()

		infos := make([]token.ClientInfo, len(sessions))
		for i, s := range sessions {
			infos[i] = s.info()
		}
		err := a.sendReports(&seq, full, infos, gone)
		switch {
		case err == nil:
			full, last = false, time.Now()
			if !healthy {
				a.log.Info("client reports delivered again")
			}
			healthy = true
		case errors.Is(err, token.ErrResync):
			full = true // the registry lost us (it restarted): everything, at once
			t.Reset(a.cfg.ReportFlush)
		default:
			full = true // what changed meanwhile is lost: everything, next time
			retryAt = time.Now().Add(a.cfg.ReportInterval)
			if healthy {
				a.log.Warn("client report failed; retrying", "err", err)
			}
			healthy = false
		}
	}
}

// sendReports sends one report, or a full one in chunks: the first resets
// the broker's picture, the others add to it.
func (a *Authority) sendReports(seq *uint64, full bool, infos []token.ClientInfo, gone []uint64) error {
	for first := true; first || len(infos) > 0; first = false {
		n := chunkLen(infos)
		*seq++
		r := token.ClientReport{InstanceID: a.cfg.InstanceID, Broker: a.cfg.BrokerID, Seq: *seq, Full: full && first,
			Connected: infos[:n]}
		if first {
			r.Gone = gone
		}
		infos = infos[n:]
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := a.cfg.Registry.ReportClients(ctx, r)
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}

// chunkLen is how many of infos go in one report: at most reportChunk, and
// at most what fits well within a request body (1 MiB) even when every
// byte of a client ID must be escaped, then percent-encoded (8 bytes each).
func chunkLen(infos []token.ClientInfo) int {
	const budget = 512 << 10
	size := 0
	for i, c := range infos {
		size += 8*(len(c.ClientID)+len(c.Remote)) + 80*len(c.TokenIDs) + 200
		if i > 0 && (size > budget || i == reportChunk) {
			return i
		}
	}
	return len(infos)
}

// applyKick carries out a KickClient heard on the feed: connections of the
// client ID are disconnected with 0x98 and their sessions discarded, and
// the adapter discards a session of that client ID it keeps offline from
// before it (Config.Discard). A kick logged before this Authority first
// read the feed (a replay of the log at start) only does the latter: a
// connection admitted since is not the one kicked.
func (a *Authority) applyKick(k token.Revocation) {
	if k.Seq > a.startHead {
		var victims []*Session
		a.connMu.Lock()
		for _, s := range a.conns { // kicks are rare: a scan, not an index kept for every connection
			if s.clientID == k.ClientID {
				victims = append(victims, s)
			}
		}
		a.connMu.Unlock()
		for _, s := range victims {
			s.Kick(CauseKicked, 0, "kicked by an administrator")
		}
	}
	if a.cfg.Discard != nil {
		a.cfg.Discard(k.ClientID, k.RevokeTime)
	}
}
