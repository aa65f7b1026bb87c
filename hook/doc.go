// Package hook is tokenmq's Mochi adapter: a Mochi hook whose callbacks
// translate Mochi's events into calls of a tokenauth.Authority (which
// authenticates every CONNECT by its tokens, keeps each connection's rights
// and timers and follows revocations) and the Authority's decisions into
// Mochi's packets and codes.
//
// One file per job: connect.go (CONNECT, CONNACK codes, session start and
// end), enforce.go (ACL on every publish, subscribe and delivery), will.go
// (Wills, delayed ones checked again when due), renew.go ($SYS/uploadToken
// and MQTT 5 AUTH), client.go (the per-connection state and the
// Authority's notices, kicks and subscription pruning), session.go
// (persistent sessions: takeover, parking, expiry), queue.go (the offline
// queue, resume re-checks, records tied to deliveries), hold.go (publishes
// held until their records are on disk), persist.go (Mochi's storage
// events over a sessionstore.Store), backpressure.go (QoS 0 backpressure),
// conn.go (the connection slot that keeps the per-delivery lookups off a
// map).
//
// It fails closed: a client without state here is allowed nothing.
package hook
