package boltstore

import "errors"

// ErrLocked means another process holds the store file open.

// errBadRecord means a stored record does not decode: a damaged store.
var errBadRecord = errors.New("malformed record")
