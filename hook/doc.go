// Package hook is tokenmq's Mochi hook: it authenticates every CONNECT by its
// tokens (through a Validator, behind an LRU cache), enforces the tokens'
// topic ACLs on every publish, subscribe and delivery, warns clients before
// their tokens expire, lets them renew in session, and disconnects them on
// expiry or revocation (followed through a RevocationFeed).
//
// It fails closed: a client without a session here is allowed nothing, and
// a token service that cannot answer means "no" (CONNACK 0x88), except for
// tokens with a recent positive answer in the cache (stale grace).
package hook
