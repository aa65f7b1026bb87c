package tokenauth

import (
	"context"
	"encoding/json"

	"github.com/tokenmq/tokenmq/token"
)

// RenewResult is the outcome of an in-session renewal (SPEC §3.4).
type RenewResult int

// Outcomes of Session.Renew.
const (
	Renewed          RenewResult = iota // the token now gives the connection its rights of its type
	RenewInvalid                        // invalid, forged, expired, revoked or not acceptable here: refuse (RefuseRenewal)
	RenewUnavailable                    // the token service could not answer: nothing changed
	RenewKicked                         // valid, but revoked while it was swapped in: the connection is ending
)

// MaxUploadPayload bounds a $SYS/uploadToken payload.
const MaxUploadPayload = 4096

// ParseUpload parses a $SYS/uploadToken payload: the token and the type it
// is given as.
func ParseUpload(payload []byte) (tok string, typ token.Actions, err error) {
	var body struct {
		Token string `json:"token"` // "Token" matches too
		Type  string `json:"type"`
	}
	if len(payload) > MaxUploadPayload || json.Unmarshal(payload, &body) != nil {
		return "", 0, ErrBadUpload
	}
	typ, ok := ParseType(body.Type)
	if !ok {
		return "", 0, ErrBadUpload
	}
	return body.Token, typ, nil
}

// Renew validates tok and makes it the connection's token of type typ (0:
// the token's own Actions), replacing that type's rights, letting the
// adapter remove the subscriptions they no longer cover (Client.Restrict)
// and re-arming the expiry timers. On RenewInvalid the caller answers the
// renewal and calls RefuseRenewal.
func (s *Session) Renew(tok string, typ token.Actions) RenewResult {
	if checkTokenShape(tok) != nil {
		return RenewInvalid
	}
	g, err := s.a.cache.Lookup(context.Background(), tok) // a miss's call is bounded by QueryTimeout
	if err != nil && !token.IsDenied(err) {
		s.a.obs.Renewal("unavailable")
		s.a.record(Event{Kind: "renewal", ClientID: s.clientID, Remote: s.remote, Result: "unavailable", Reason: "token_service_unavailable"})
		s.a.log.Warn("renewal not checked: token service unavailable", "client", s.clientID, "err", err)
		return RenewUnavailable
	}
	if err == nil && typ == 0 {
		typ = g.Actions
	}
	if err != nil || CheckGrant(Credentials{Form: s.form, AccessKeyID: s.accessKeyID}, s.a.cfg.InstanceID, s.clientID, g.Grant, typ) != nil {
		return RenewInvalid
	}

	s.mu.Lock()
	old := make([]token.ID, 0, len(s.held))
	var kept []*held
	for _, hd := range s.held {
		old = append(old, hd.Grant.TokenID)
		if rest := hd.Type &^ typ; rest != 0 {
			kept = append(kept, hd)
			if rest != hd.Type { // re-arm with the narrower type
				hd.notice, hd.expire = stopTimer(hd.notice), stopTimer(hd.expire)
				hd.Type = rest
				s.armTimersLocked(hd)
			}
		} else {
			stopTimer(hd.notice)
			stopTimer(hd.expire)
		}
	}
	nh := &held{Held: Held{Grant: g, Type: typ, ACL: g.ACLFor(s.clientID)}}
	s.held = append(kept, nh)
	s.armTimersLocked(nh)
	r := RightsOf(s.heldsLocked())
	s.rights.Store(r)
	s.mu.Unlock()
	s.a.unindex(s, old)
	s.a.index(s)
	s.a.retrack(s)
	if s.a.cache.isRevoked(g.TokenID) { // revoked while we were swapping it in
		s.Kick(CauseRevoked, typ, "token revoked")
		return RenewKicked
	}
	s.client.Restrict(r)
	s.a.obs.Renewal("renewed")
	if s.a.cfg.Events != nil {
		s.a.record(Event{Kind: "renewal", ClientID: s.clientID, Remote: s.remote, Result: "renewed", Reason: "ok", TokenIDs: []token.ID{g.TokenID}})
	}
	s.a.log.Info("token renewed", "client", s.clientID, "token_id", g.TokenID.String(), "type", TypeName(typ))
	return Renewed
}

// RefuseRenewal ends the connection after an invalid renewal: the notice
// with code 1, then the disconnect (SPEC §3.4). why is for the log.
func (s *Session) RefuseRenewal(typ token.Actions, why string) {
	s.a.obs.Renewal("invalid")
	s.a.record(Event{Kind: "renewal", ClientID: s.clientID, Remote: s.remote, Result: "invalid", Reason: why, Code: CauseInvalid.Reason()})
	s.Kick(CauseInvalid, typ, why)
}

// UseAuthMethod records that the client authenticates with MQTT 5's
// Authentication Method AuthMethod: its expiry notices carry user
// properties too.
func (s *Session) UseAuthMethod() { s.authMethod.Store(true) }
