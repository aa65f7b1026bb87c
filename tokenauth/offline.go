package tokenauth

import (
	"time"

	"github.com/tokenmq/tokenmq/token"
)

// Permits reports whether the session's tokens let it do typ (ActionRead:
// receive, ActionWrite: publish) on topic name t at now: some token held as
// typ, neither expired nor revoked by now, has a resource for this
// connection that matches t. It answers for a connection that is gone too
// (End): whether a persistent session's offline queue may take a message
// (SPEC §3.6), whether a Will may be sent when it is due (§3.1). A kicked
// session is permitted nothing. It takes the session's lock: it is for
// offline queueing and Wills, not the connected hot path (Rights).
func (s *Session) Permits(typ token.Actions, t string, now time.Time) bool {
	if t == "" || s.rights.Load() == NoRights {
		return false
	}
	if typ == token.ActionWrite && t[0] == '$' && ReservedTopic(t) {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, h := range s.held {
		if h.Type&typ == 0 || !now.Before(h.Grant.ExpireTime) || s.a.cache.isRevoked(h.Grant.TokenID) {
			continue
		}
		if h.acl().Match(t) {
			return true
		}
	}
	return false
}

// Grants returns the tokens the session holds, as the types they are held
// as: what a broker keeps of a persistent session (never the tokens).
func (s *Session) Grants() []HeldGrant {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]HeldGrant, len(s.held))
	for i, h := range s.held {
		out[i] = HeldGrant{Grant: h.Grant.Grant, Type: h.Type}
	}
	return out
}

// Credential returns the credential form the session connected with and,
// for the ApsaraMQ form, the access key its tokens must be issued by.
func (s *Session) Credential() (Form, string) { return s.form, s.accessKeyID }

// HeldGrant is a token grant a session relies on and the type it is held
// as.
type HeldGrant struct {
	Grant token.Grant
	Type  token.Actions
}

// Restore rebuilds the session of a persistent client that was offline
// when the broker restarted, from the grants it held (Grants): it is not
// connected (Closing), has no timers and is not indexed for revocations,
// and Permits answers for it as it did before the restart. A grant whose
// resources no longer compile is left out (fail closed).
func (a *Authority) Restore(clientID string, form Form, accessKeyID string, grants []HeldGrant, client Client) *Session {
	s := a.rebuild(clientID, "", form, accessKeyID, grants, client)
	s.closing.Store(true)
	return s
}

// Adopt takes on a live connection this Authority did not admit: one
// admitted by another process of the same adapter, or by this one before
// it restarted, known from the grants it holds (a broker that keeps its
// clients when their authority restarts: a NATS cluster). The session is
// indexed for revocations and established: its expiry timers run, and a
// token already expired or known revoked kicks it at once.
func (a *Authority) Adopt(clientID, remote string, form Form, accessKeyID string, grants []HeldGrant, client Client) *Session {
	s := a.rebuild(clientID, remote, form, accessKeyID, grants, client)
	if len(s.held) < len(grants) || len(grants) == 0 {
		s.Establish()
		s.Kick(CauseInvalid, 0, "adopted connection: a token it holds is unusable")
		return s
	}
	a.index(s)
	a.track(s)
	s.Establish()
	return s
}

func (a *Authority) rebuild(clientID, remote string, form Form, accessKeyID string, grants []HeldGrant, client Client) *Session {
	hs := make([]Held, 0, len(grants))
	for _, hg := range grants {
		g, err := newGrant(hg.Grant)
		if err != nil {
			a.log.Warn("rebuilt session: a token's resources do not compile; left out", "client", clientID, "token_id", hg.Grant.TokenID.String(), "err", err)
			continue
		}
		hs = append(hs, Held{Grant: g, Type: hg.Type, ACL: g.ACLFor(clientID)})
	}
	// An adopted connection is a NATS one: MQTT 3.1.1, persistent or not unknown.
	return newSession(a, client, ConnectRequest{ClientID: clientID, Remote: remote, ProtocolVersion: 4}, Credentials{Form: form, AccessKeyID: accessKeyID}, hs)
}

// Resources returns the resources of the tokens the session holds for
// reading and for writing, ${clientid} expanded for its client ID: what an
// adapter that hands rights to its broker as filters (EMQX, NATS) gives it.
func (s *Session) Resources() (read, write []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, h := range s.held {
		if h.Type.Covers(token.ActionRead) {
			read = append(read, h.Resources()...)
		}
		if h.Type.Covers(token.ActionWrite) {
			write = append(write, h.Resources()...)
		}
	}
	return read, write
}

// Expiry returns the earliest expiry of the tokens the session holds: when
// the connection ends unless it renews.
func (s *Session) Expiry() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first time.Time
	for _, h := range s.held {
		if first.IsZero() || h.Grant.ExpireTime.Before(first) {
			first = h.Grant.ExpireTime
		}
	}
	return first
}
