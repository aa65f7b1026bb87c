package bench

import "errors"

// ErrRefused is a CONNACK with a non-zero return code.
var ErrRefused = errors.New("connection refused by the broker")
