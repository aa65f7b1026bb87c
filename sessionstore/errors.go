package sessionstore

import "errors"

var (
	// ErrLocked means another process holds the state file open.
	ErrLocked = errors.New("broker state file is in use by another process")
	// ErrDamaged means the state file cannot be read: it is corrupt, or not
	// a broker state file.
	ErrDamaged = errors.New("broker state file is damaged")
	// ErrClosed is returned by writes after Close.
	ErrClosed = errors.New("broker state store closed")
)
