package pgstore

import (
	"context"
	"time"
)

// UseNonce records a SignatureNonce (as its hash) until expires and reports
// whether it was new, for every replica at once. An expired record of the
// same hash is reused. The write does not wait for fsync: a database crash
// may forget the last moments' nonces, reopening their replay window until
// their timestamps expire (15 minutes) — the price of not paying an fsync
// on every API call.
func (s *Store) UseNonce(ctx context.Context, hash [32]byte, expires time.Time) (bool, error) {
	tag, err := s.fast.Exec(ctx, `INSERT INTO nonces (hash, expires_ms) VALUES ($1, $2)
		ON CONFLICT (hash) DO UPDATE SET expires_ms = excluded.expires_ms WHERE nonces.expires_ms < $3`,
		hash[:], expires.UnixMilli(), time.Now().UnixMilli())
	if err != nil {
		return false, s.check(err)
	}
	return tag.RowsAffected() == 1, nil
}

// CountCall adds one call of key in the one-second window starting at
// window and returns the calls counted in it by every replica.
func (s *Store) CountCall(ctx context.Context, key string, window time.Time) (int64, error) {
	var n int64
	err := s.fast.QueryRow(ctx, `INSERT INTO rate_windows (key, window_ms, calls) VALUES ($1, $2, 1)
		ON CONFLICT (key, window_ms) DO UPDATE SET calls = rate_windows.calls + 1 RETURNING calls`,
		key, window.UnixMilli()).Scan(&n)
	return n, s.check(err)
}
