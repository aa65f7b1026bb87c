package natsauth

import "errors"

// ErrUnconvertible: an MQTT topic or filter nats-server cannot carry.
var ErrUnconvertible = errors.New("cannot be a NATS subject")
