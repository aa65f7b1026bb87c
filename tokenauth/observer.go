package tokenauth

import "time"

// Observer is told what the core and its adapters decide, for metrics. Its
// methods must be cheap: ACLDenied is called on the publish and delivery
// path.
type Observer interface {
	ConnectDecision(result, reason string)      // accepted/refused, and why
	Validation(outcome string, d time.Duration) // a validation call: valid, denied or error
	ACLDenied(action string)                    // publish or subscribe
	Disconnected(reason string)                 // expired, revoked, invalid_renewal
	Renewal(result string)                      // renewed, invalid, unavailable
	RevocationApplied(lag time.Duration)        // from the revocation to the broker acting on it
}

type nopObserver struct{}

func (nopObserver) ConnectDecision(string, string)   {}
func (nopObserver) Validation(string, time.Duration) {}
func (nopObserver) ACLDenied(string)                 {}
func (nopObserver) Disconnected(string)              {}
func (nopObserver) Renewal(string)                   {}
func (nopObserver) RevocationApplied(time.Duration)  {}
