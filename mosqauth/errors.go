package mosqauth

import "errors"

// Sentinel errors of the Mosquitto adapter.
var (
	// ErrOption is a plugin_opt_* value (or its environment variable) that
	// is missing or cannot be used.
	ErrOption = errors.New("tokenmq plugin option")
)
