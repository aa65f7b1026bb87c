package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tokenmq/tokenmq/token"
)

// FileName is the store's file name under the data directory.
const FileName = "tokens.db"

const schemaVersion = "1"

var (
	bucketTokens      = []byte("tokens")
	bucketByInstance  = []byte("by_instance")
	bucketGC          = []byte("gc")
	bucketRevocations = []byte("revocations")
	bucketMeta        = []byte("meta")
	keySchema         = []byte("schema")
)

// Store is a token.Store on a bbolt file.
type Store struct {
	db *bolt.DB
}

var _ token.Store = (*Store)(nil)

// Open opens (creating if needed, mode 0600) the store file at path. It fails
// with ErrLocked within lockWait if another process has it open.
func Open(path string, lockWait time.Duration) (s *Store, err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	defer func() {
		if r := recover(); r != nil { // bbolt panics on some corrupt files
			s, err = nil, fmt.Errorf("open store %s: %w: %v", path, token.ErrStoreDamaged, r)
		}
	}()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockWait, FreelistType: bolt.FreelistMapType})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("open store %s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	db.MaxBatchDelay = time.Millisecond
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketTokens, bucketByInstance, bucketGC, bucketRevocations, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		switch v := meta.Get(keySchema); {
		case v == nil:
			return meta.Put(keySchema, []byte(schemaVersion))
		case string(v) != schemaVersion:
			return fmt.Errorf("schema version %q, this build reads %q", v, schemaVersion)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the file. bbolt has synced every committed transaction already.
func (s *Store) Close() error { return s.db.Close() }

// Check reads every record and index entry and reports the first
// inconsistency: a full scan for after a crash.
func (s *Store) Check() error {
	return s.db.View(func(tx *bolt.Tx) error {
		var first error
		for err := range tx.Check() { // drain: the checker blocks until read
			if first == nil {
				first = fmt.Errorf("bbolt check: %w", err)
			}
		}
		if first != nil {
			return first
		}
		n := 0
		err := tx.Bucket(bucketTokens).ForEach(func(k, v []byte) error {
			n++
			r, err := decodeRecord(k, v)
			if err != nil {
				return err
			}
			if tx.Bucket(bucketByInstance).Get(instanceKey(r.InstanceID, r.CreateTime, r.ID)) == nil {
				return fmt.Errorf("token %s: missing from by_instance", r.ID)
			}
			if tx.Bucket(bucketGC).Get(gcKey(r.GCTime(), r.ID)) == nil {
				return fmt.Errorf("token %s: missing from gc index", r.ID)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if m := tx.Bucket(bucketByInstance).Stats().KeyN; m != n {
			return fmt.Errorf("by_instance has %d entries for %d tokens", m, n)
		}
		if m := tx.Bucket(bucketGC).Stats().KeyN; m != n {
			return fmt.Errorf("gc index has %d entries for %d tokens", m, n)
		}
		return nil
	})
}

func (s *Store) view(ctx context.Context, fn func(*bolt.Tx) error) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	defer recoverDamage(&err)
	return mapClosed(s.db.View(guarded(fn)))
}

// batch runs fn in a write transaction shared with concurrent callers. fn may
// run more than once and must set its results afresh each time.
func (s *Store) batch(ctx context.Context, fn func(*bolt.Tx) error) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	defer recoverDamage(&err)
	return mapClosed(s.db.Batch(guarded(fn)))
}

// guarded turns a panic inside fn (bbolt panics on some corrupt pages) into
// ErrStoreDamaged: that request fails, the process goes on.
func guarded(fn func(*bolt.Tx) error) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) (err error) {
		defer recoverDamage(&err)
		return fn(tx)
	}
}

func recoverDamage(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%w: %v", token.ErrStoreDamaged, r)
	}
}

// Empty implements token.Store.
func (s *Store) Empty(ctx context.Context) (bool, error) {
	empty := true
	err := s.view(ctx, func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bucketTokens).Cursor().First()
		empty = k == nil
		return nil
	})
	return empty, err
}

func mapClosed(err error) error {
	if errors.Is(err, bolt.ErrDatabaseNotOpen) {
		return token.ErrStoreClosed
	}
	return err
}

// Create implements token.Store.
func (s *Store) Create(ctx context.Context, r *token.Record) error {
	v, err := encodeRecord(r)
	if err != nil {
		return err
	}
	return s.batch(ctx, func(tx *bolt.Tx) error {
		tokens := tx.Bucket(bucketTokens)
		if tokens.Get(r.ID[:]) != nil {
			return fmt.Errorf("create token %s: id exists", r.ID)
		}
		if err := tokens.Put(r.ID[:], v); err != nil {
			return err
		}
		if err := tx.Bucket(bucketByInstance).Put(instanceKey(r.InstanceID, r.CreateTime, r.ID), nil); err != nil {
			return err
		}
		return tx.Bucket(bucketGC).Put(gcKey(r.GCTime(), r.ID), nil)
	})
}

// Get implements token.Store.
func (s *Store) Get(ctx context.Context, id token.ID) (*token.Record, error) {
	var r *token.Record
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketTokens).Get(id[:])
		if v == nil {
			return token.ErrNotFound
		}
		var err error
		r, err = decodeRecord(id[:], v)
		return err
	})
	return r, err
}

// Revoke implements token.Store.
func (s *Store) Revoke(ctx context.Context, id token.ID, at time.Time) (*token.Record, error) {
	var out *token.Record
	err := s.batch(ctx, func(tx *bolt.Tx) error {
		out = nil
		tokens := tx.Bucket(bucketTokens)
		v := tokens.Get(id[:])
		if v == nil {
			return token.ErrNotFound
		}
		r, err := decodeRecord(id[:], v)
		if err != nil {
			return err
		}
		if r.Revoked {
			out = r
			return nil
		}
		revs := tx.Bucket(bucketRevocations)
		seq, err := revs.NextSequence()
		if err != nil {
			return err
		}
		gc := tx.Bucket(bucketGC)
		if err := gc.Delete(gcKey(r.GCTime(), r.ID)); err != nil {
			return err
		}
		r.Revoked, r.RevokeTime, r.RevokeSeq, r.ModifyTime = true, at, seq, at
		if err := gc.Put(gcKey(r.GCTime(), r.ID), nil); err != nil {
			return err
		}
		nv, err := encodeRecord(r)
		if err != nil {
			return err
		}
		if err := tokens.Put(id[:], nv); err != nil {
			return err
		}
		rv, err := json.Marshal(revocationJSON{ID: r.ID[:], Instance: r.InstanceID, Revoke: at.UnixMilli(), Expire: r.ExpireTime.UnixMilli()})
		if err != nil {
			return err
		}
		if err := revs.Put(u64(seq), rv); err != nil {
			return err
		}
		out = r
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Kick implements token.Store.
func (s *Store) Kick(ctx context.Context, k token.Revocation) (uint64, error) {
	if !k.IsKick() {
		return 0, errors.New("boltstore: a kick needs a client ID")
	}
	var seq uint64
	err := s.batch(ctx, func(tx *bolt.Tx) error {
		revs := tx.Bucket(bucketRevocations)
		n, err := revs.NextSequence()
		if err != nil {
			return err
		}
		rv, err := json.Marshal(revocationJSON{ID: []byte{}, Instance: k.InstanceID, Revoke: k.RevokeTime.UnixMilli(),
			Expire: k.ExpireTime.UnixMilli(), Client: k.ClientID})
		if err != nil {
			return err
		}
		seq = n
		return revs.Put(u64(n), rv)
	})
	if err != nil {
		return 0, err
	}
	return seq, nil
}

// List implements token.Store.
func (s *Store) List(ctx context.Context, instanceID string, after *token.ListPosition, limit int) ([]*token.Record, error) {
	var out []*token.Record
	prefix := append([]byte(instanceID), 0)
	err := s.view(ctx, func(tx *bolt.Tx) error {
		out = out[:0]
		c := tx.Bucket(bucketByInstance).Cursor()
		tokens := tx.Bucket(bucketTokens)
		var k []byte
		if after == nil {
			k, _ = c.Seek(prefix)
		} else {
			start := instanceKey(instanceID, after.CreateTime, after.ID)
			k, _ = c.Seek(start)
			if bytes.Equal(k, start) {
				k, _ = c.Next()
			}
		}
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, _ = c.Next() {
			id := k[len(k)-token.IDLen:]
			v := tokens.Get(id)
			if v == nil {
				return fmt.Errorf("list: index names missing token %x", id)
			}
			r, err := decodeRecord(id, v)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// Revocations implements token.Store.
func (s *Store) Revocations(ctx context.Context, after uint64, limit int) ([]token.Revocation, error) {
	var out []token.Revocation
	err := s.view(ctx, func(tx *bolt.Tx) error {
		out = out[:0]
		c := tx.Bucket(bucketRevocations).Cursor()
		for k, v := c.Seek(u64(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
			rv, err := decodeRevocation(k, v)
			if err != nil {
				return err
			}
			out = append(out, rv)
		}
		return nil
	})
	return out, err
}

// RevocationHead implements token.Store.
func (s *Store) RevocationHead(ctx context.Context) (uint64, error) {
	var head uint64
	err := s.view(ctx, func(tx *bolt.Tx) error {
		head = tx.Bucket(bucketRevocations).Sequence()
		return nil
	})
	return head, err
}

// collectBatch bounds one Collect transaction.
const collectBatch = 5000

// Collect implements token.Store.
func (s *Store) Collect(ctx context.Context, cutoff time.Time) (int, error) {
	total := 0
	for {
		n := 0
		err := s.batch(ctx, func(tx *bolt.Tx) error {
			n = 0
			gc := tx.Bucket(bucketGC).Cursor()
			tokens := tx.Bucket(bucketTokens)
			byInst := tx.Bucket(bucketByInstance)
			limit := u64(uint64(cutoff.UnixMilli()))
			for k, _ := gc.First(); k != nil && bytes.Compare(k[:8], limit) < 0 && n < collectBatch; k, _ = gc.First() {
				id := k[8:]
				if v := tokens.Get(id); v != nil {
					r, err := decodeRecord(id, v)
					if err != nil {
						return err
					}
					if err := byInst.Delete(instanceKey(r.InstanceID, r.CreateTime, r.ID)); err != nil {
						return err
					}
					if err := tokens.Delete(id); err != nil {
						return err
					}
				}
				if err := gc.Delete(); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += n
		if n < collectBatch {
			break
		}
	}
	err := s.batch(ctx, func(tx *bolt.Tx) error {
		revs := tx.Bucket(bucketRevocations)
		var dead [][]byte
		err := revs.ForEach(func(k, v []byte) error {
			rv, err := decodeRevocation(k, v)
			if err != nil {
				return err
			}
			if rv.ExpireTime.Before(cutoff) {
				dead = append(dead, bytes.Clone(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range dead {
			if err := revs.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	return total, err
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func instanceKey(instance string, create time.Time, id token.ID) []byte {
	k := make([]byte, 0, len(instance)+1+8+token.IDLen)
	k = append(k, instance...)
	k = append(k, 0)
	k = binary.BigEndian.AppendUint64(k, uint64(create.UnixMilli()))
	return append(k, id[:]...)
}

func gcKey(at time.Time, id token.ID) []byte {
	k := make([]byte, 0, 8+token.IDLen)
	k = binary.BigEndian.AppendUint64(k, uint64(max(at.UnixMilli(), 0)))
	return append(k, id[:]...)
}
