package tokenauth

import (
	"time"

	"github.com/tokenmq/tokenmq/token"
)

// Clock is the time the core's expiry decisions and timers run on: the
// system's, or a test's (tokenmqtest) that moves only when told.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has passed.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc.
type Timer interface {
	// Stop prevents the call if it has not happened yet.
	Stop() bool
}

// SystemClock is the system's time.
type SystemClock struct{}

// Now implements Clock.
func (SystemClock) Now() time.Time { return time.Now() }

// AfterFunc implements Clock.
func (SystemClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// Event is one decision of the core about a connection, for tests and
// tools that assert on what happened (Config.Events): a CONNECT accepted
// or refused, a renewal, a disconnect the core made.
type Event struct {
	Time     time.Time
	Kind     string // "connect", "renewal" or "disconnect"
	ClientID string
	Remote   string
	// Result: for connect "accepted" or "refused"; for renewal "renewed",
	// "invalid" or "unavailable"; for disconnect the cause: "expired",
	// "revoked", "invalid_renewal" or "kicked".
	Result string
	// Reason is why, as in the logs and metrics: "ok", "will_not_allowed",
	// "token_expired", "bad_token"…
	Reason string
	// Code is the MQTT 5 reason code decided (a refusal's CONNACK code, a
	// disconnect's DISCONNECT code); 0 for accepted connects and renewals.
	Code     ReasonCode
	TokenIDs []token.ID
}
