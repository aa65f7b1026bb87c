package boltstore

import (
	"errors"
	"fmt"

	"github.com/tokenmq/tokenmq/token"
)

// ErrLocked means another process holds the store file open.
var ErrLocked = errors.New("store file is in use by another process")

// errBadRecord means a stored record does not decode: a damaged store.
var errBadRecord = fmt.Errorf("%w: malformed record", token.ErrStoreDamaged)
