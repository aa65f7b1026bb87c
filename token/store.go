package token

import (
	"context"
	"time"
)

// Store persists token records. It never sees a token string.
//
// Create, Revoke and Kick must be durable when they return: a crash right after
// must not lose them. Implementations must be safe for concurrent use.
type Store interface {
	// Create stores a new record. Its ID is fresh; an existing ID is an error.
	Create(ctx context.Context, r *Record) error
	// Get returns the record with the given ID, or ErrNotFound.
	Get(ctx context.Context, id ID) (*Record, error)
	// Revoke marks the record revoked at the given time, appends it to the
	// revocation log and returns the updated record. Revoking a revoked
	// record changes nothing and returns it. ErrNotFound if there is none.
	Revoke(ctx context.Context, id ID, at time.Time) (*Record, error)
	// Kick appends a kick (k.ClientID set, k.ID zero) to the revocation
	// log and returns its Seq. It is durable when it returns.
	Kick(ctx context.Context, k Revocation) (uint64, error)
	// List returns up to limit records of one instance in creation order
	// (then by ID), starting after the given position (nil: from the start).
	List(ctx context.Context, instanceID string, after *ListPosition, limit int) ([]*Record, error)
	// Revocations returns up to limit revocation-log entries with Seq > after, in Seq order.
	Revocations(ctx context.Context, after uint64, limit int) ([]Revocation, error)
	// RevocationHead returns the Seq of the last revocation ever logged (0 if none).
	RevocationHead(ctx context.Context) (uint64, error)
	// Empty reports whether the store holds no token record at all.
	Empty(ctx context.Context) (bool, error)
	// Collect deletes the records that expired or were revoked before cutoff,
	// and the log entries of tokens that expired before cutoff. It returns the
	// number of records deleted.
	Collect(ctx context.Context, cutoff time.Time) (int, error)
	// Close releases the store. Calls after Close return ErrStoreClosed.
	Close() error
}

// ListPosition is where a List page ends: the last record's creation time and ID.
type ListPosition struct {
	CreateTime time.Time
	ID         ID
}

// GCTime is when a record becomes garbage, before any grace period: its
// expiry, or its revocation if that came first.
func (r *Record) GCTime() time.Time {
	if r.Revoked && r.RevokeTime.Before(r.ExpireTime) {
		return r.RevokeTime
	}
	return r.ExpireTime
}
