// Package tokenauth is tokenmq's broker-neutral token authentication and
// authorization: what SPEC §3 says a token means to a broker, with no
// broker in it. Every adapter — the Mochi hook (package hook), the EMQX
// webhook (package api), and the NATS callout and Mosquitto plugin to come
// — translates its broker's events into calls here and the decisions back
// into its broker's codes.
//
// What lives where:
//
//   - credentials.go: the two CONNECT credential forms (SPEC §3.1), ParseCredentials.
//   - grant.go: Authenticate and CheckGrant, the refusal reasons and codes
//     (codes.go: MQTT 5 reason codes and their MQTT 3.1.1 return codes).
//   - rights.go: a connection's Rights, the union of its tokens' compiled
//     resources, and the publish/subscribe/delivery checks of SPEC §3.2.
//   - cache.go: the validation Cache (SPEC §3.3) over a Validator.
//   - authority.go: the Authority an adapter drives: Connect admits a
//     connection and returns its Session.
//   - session.go: a connection's tokens, rights, notice and expiry timers,
//     and Kick; the Client interface is what the adapter implements.
//   - notices.go, renew.go: $SYS/tokenExpireNotice, $SYS/tokenInvalidNotice
//     and in-session renewal (SPEC §3.4).
//   - revocation.go: the revocation index and feed follower (SPEC §3.5).
//
// Packages import one way: acl ← token ← tokenauth ← {hook, api} ← broker ←
// cmd. tokenauth never imports a broker.
//
// The core fails closed: a connection without a session is allowed nothing,
// and a token service that cannot answer means "no" (0x88), except for
// tokens with a recent positive answer in the cache (stale grace).
package tokenauth
