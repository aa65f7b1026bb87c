// Package pgstore implements token.Store on PostgreSQL (pgx), so that
// several token-service replicas serve one set of tokens.
//
// The schema is created and migrated by Open from the embedded, versioned
// migrations/*.sql, under an advisory lock so that replicas starting
// together migrate once. Every write is a committed transaction before the
// call returns. Revocations are serialised (an advisory lock) so that the
// revocation log's sequence numbers commit in order — a follower reading
// the log never skips one — and each is announced with NOTIFY on
// tokenmq_revocations, which Watch turns into wake-ups of the service's
// revocation feed in every replica. Nonces shares SignatureNonce replay
// protection between replicas.
package pgstore
