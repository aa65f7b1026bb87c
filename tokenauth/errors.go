package tokenauth

import "errors"

// Sentinel errors of the core. Validation denials are token's (token.ErrNotFound,
// token.ErrExpired, token.ErrRevoked, …; see token.IsDenied).
var (
	// ErrBadCredentials means the CONNECT credentials are missing or
	// malformed (SPEC §3.1): CONNACK 0x86 / 0x04.
	ErrBadCredentials = errors.New("missing or malformed credentials")

	// ErrUnavailable wraps an outage: the token service did not answer and no
	// usable cached answer stands in (CONNACK 0x88 / 0x03).
	ErrUnavailable = errors.New("token service unavailable")

	// ErrGrantInstance means a valid token belongs to another instance.
	ErrGrantInstance = errors.New("token of another instance")
	// ErrGrantAccessKey means a valid token was issued by another access key
	// than the one the ApsaraMQ username names.
	ErrGrantAccessKey = errors.New("token issued by another access key")
	// ErrGrantType means a valid token's Actions do not cover the type it is
	// given as (an R token given as W).
	ErrGrantType = errors.New("token actions do not cover its type")
	// ErrGrantClientID means a valid token is bound to other client IDs
	// (SPEC §3.7): CONNACK 0x85 / 0x02.
	ErrGrantClientID = errors.New("token bound to other client IDs")

	// ErrBadUpload means a $SYS/uploadToken payload is not
	// {"token":"…","type":"R|W|RW"} (key "Token" also accepted).
	ErrBadUpload = errors.New(`renewal is not {"token":"…","type":"R|W|RW"}`)
)
