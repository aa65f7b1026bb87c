package token

import (
	"errors"
	"fmt"
)

// Validation outcomes. ErrMalformed, ErrForged, ErrNotFound, ErrExpired,
// ErrRevoked and ErrWrongInstance mean "deny"; any other error from Query is
// an outage.
var (
	// ErrMalformed means the string is not shaped like a tokenmq token.
	ErrMalformed = errors.New("token is malformed")
	// ErrForged means the token's MAC does not verify under any known server key.
	ErrForged = errors.New("token is forged or altered")
	// ErrNotFound means the token verified but no record exists (never issued here, or garbage-collected).
	ErrNotFound = errors.New("token not found")
	// ErrExpired means the token's expiry time has passed.
	ErrExpired = errors.New("token expired")
	// ErrRevoked means the token was revoked.
	ErrRevoked = errors.New("token revoked")
	// ErrWrongInstance means the token belongs to another instance.
	ErrWrongInstance = errors.New("token belongs to another instance")
	// ErrInstanceNotServed means the service does not serve the instance asked for.
	ErrInstanceNotServed = errors.New("instance not served")
	// ErrStoreClosed is returned by a Store used after Close.
	ErrStoreClosed = errors.New("token store closed")
	// ErrStoreDamaged means a store read found corruption (a record that
	// does not decode, a page the engine cannot read). It fails that request
	// only: an outage, never a denial.
	ErrStoreDamaged = errors.New("token store is damaged")
)

// IsDenied reports whether err is a validation outcome that means "this
// token is not valid" rather than a failure to find out.
func IsDenied(err error) bool {
	return errors.Is(err, ErrMalformed) || errors.Is(err, ErrForged) ||
		errors.Is(err, ErrNotFound) || errors.Is(err, ErrExpired) ||
		errors.Is(err, ErrRevoked) || errors.Is(err, ErrWrongInstance)
}

// ParamError reports a bad request parameter: Param names it as the API does
// ("Resources", "ExpireTime"), Msg says exactly what is wrong.
type ParamError struct {
	Param string
	Msg   string
}

func (e *ParamError) Error() string { return fmt.Sprintf("invalid %s: %s", e.Param, e.Msg) }

// paramErrorf builds a *ParamError.
func paramErrorf(param, format string, args ...any) error {
	return &ParamError{Param: param, Msg: fmt.Sprintf(format, args...)}
}
