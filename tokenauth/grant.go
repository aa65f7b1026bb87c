package tokenauth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tokenmq/tokenmq/token"
)

// Refusal is why a CONNECT is refused: the MQTT 5 reason code SPEC §3.1
// gives (V3 maps it for MQTT 3.1.1) and a short reason for logs and metrics.
type Refusal struct {
	Code    ReasonCode
	Reason  string // malformed_credentials, wrong_instance, expired_token, …
	Err     error  // the underlying error, if any
	TokenID string // when the token was valid but not acceptable here
}

func (r *Refusal) Error() string {
	if r.Err != nil {
		return fmt.Sprintf("connect refused (0x%02x %s): %v", byte(r.Code), r.Reason, r.Err)
	}
	return fmt.Sprintf("connect refused (0x%02x %s)", byte(r.Code), r.Reason)
}

// Lookup finds the grant of a token: a *Cache, or Direct for a caller that
// follows no revocations and so must not cache.
type Lookup interface {
	// Lookup returns the grant of a valid token, a denial (token.IsDenied)
	// or an error wrapping ErrUnavailable.
	Lookup(ctx context.Context, tok string) (*Grant, error)
}

// Direct returns a Lookup that asks v every time, uncached.
func Direct(v Validator, instanceID string) Lookup { return direct{v, instanceID} }

type direct struct {
	v        Validator
	instance string
}

func (d direct) Lookup(ctx context.Context, tok string) (*Grant, error) {
	g, err := d.v.Validate(ctx, d.instance, tok)
	if token.IsDenied(err) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return newGrant(g)
}

// Authenticate checks parsed CONNECT credentials against SPEC §3.1: every
// token valid (found through l), of instanceID, issued by the ApsaraMQ
// username's AccessKeyId, and covering the type it is given as (in the
// plain form, the token's own Actions). It returns the tokens with their
// types, or why the CONNECT must be refused.
func Authenticate(ctx context.Context, l Lookup, instanceID, clientID string, creds Credentials) ([]Held, *Refusal) {
	if creds.Form == FormApsara && creds.InstanceID != instanceID {
		return nil, &Refusal{Code: ReasonNotAuthorized, Reason: "wrong_instance"}
	}
	hs := make([]Held, 0, len(creds.Tokens))
	for _, c := range creds.Tokens {
		g, err := l.Lookup(ctx, c.Token)
		switch {
		case errors.Is(err, token.ErrWrongInstance):
			return nil, &Refusal{Code: ReasonNotAuthorized, Reason: "wrong_instance"}
		case token.IsDenied(err):
			return nil, &Refusal{Code: ReasonBadCredentials, Reason: deniedReason(err), Err: err}
		case err != nil:
			return nil, &Refusal{Code: ReasonUnavailable, Reason: "token_service_unavailable", Err: err}
		}
		typ := c.Type
		if creds.Form == FormPlain {
			typ = g.Actions
		}
		if err := CheckGrant(creds, instanceID, clientID, g.Grant, typ); err != nil {
			code := ReasonNotAuthorized
			if err == ErrGrantClientID {
				code = ReasonClientIDNotValid
			}
			return nil, &Refusal{Code: code, Reason: grantReason(err), Err: err, TokenID: g.TokenID.String()}
		}
		hs = append(hs, Held{Grant: g, Type: typ, ACL: g.ACLFor(clientID)})
	}
	return hs, nil
}

// CheckGrant applies SPEC §3.1's rules to one valid token of a CONNECT by
// client clientID, given as typ: it must be of this instance, issued by the
// username's AccessKeyId (ApsaraMQ form), bound to clientID if it is bound
// at all (§3.7), and its Actions must cover typ. A non-nil error says which
// rule failed: ErrGrantClientID is 0x85, ErrGrantInstance, ErrGrantAccessKey
// and ErrGrantType are "not authorized" (0x87).
func CheckGrant(creds Credentials, instanceID, clientID string, g token.Grant, typ token.Actions) error {
	switch {
	case g.InstanceID != instanceID:
		return ErrGrantInstance
	case creds.Form == FormApsara && g.AccessKeyID != creds.AccessKeyID:
		return ErrGrantAccessKey
	case !token.ClientAllowed(g.ClientIDs, clientID):
		return ErrGrantClientID
	case !g.Actions.Covers(typ):
		return ErrGrantType
	}
	return nil
}

// grantReason names a CheckGrant error for logs and metrics.
func grantReason(err error) string {
	switch err {
	case ErrGrantInstance:
		return "wrong_instance"
	case ErrGrantAccessKey:
		return "wrong_access_key"
	case ErrGrantClientID:
		return "client_id_not_allowed"
	}
	return "type_not_covered"
}

// deniedReason names a validation denial for logs and metrics.
func deniedReason(err error) string {
	switch {
	case errors.Is(err, token.ErrExpired):
		return "expired_token"
	case errors.Is(err, token.ErrRevoked):
		return "revoked_token"
	case errors.Is(err, token.ErrForged), errors.Is(err, token.ErrMalformed):
		return "forged_token"
	}
	return "invalid_token"
}

// Expiry returns the earliest expiry of the held tokens: when the
// connection's rights start to shrink (zero if it holds none).
func Expiry(hs []Held) time.Time {
	var first time.Time
	for _, h := range hs {
		if first.IsZero() || h.Grant.ExpireTime.Before(first) {
			first = h.Grant.ExpireTime
		}
	}
	return first
}

func joinIDs(ids []token.ID) string {
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(id.String())
	}
	return b.String()
}
