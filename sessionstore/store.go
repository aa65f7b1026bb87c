package sessionstore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// FileName is the state file's name under the data directory.
const FileName = "broker-state.db"

const schemaVersion = "1"

var (
	bucketSessions      = []byte("sessions")
	bucketSubscriptions = []byte("subscriptions")
	bucketMessages      = []byte("messages")
	bucketRetained      = []byte("retained")
	bucketMeta          = []byte("meta")
	keySchema           = []byte("schema")
)

// maxBatch bounds the writes one transaction takes.
const maxBatch = 4096

// Store is the broker state on a bbolt file. It is safe for concurrent use.
type Store struct {
	db   *bolt.DB
	log  *slog.Logger
	reqs chan request
	done chan struct{}
	seq  atomic.Uint64

	closeOnce sync.Once
	mu        sync.RWMutex // held for reading by writers, for writing by Close
	closed    bool

	commits, writes atomic.Int64
}

// request is writes from one caller; done (nil for WriteAsync) gets the
// commit's result.
type request struct {
	ops  []Op
	done chan error
}

// Open opens (creating if needed, mode 0600) the state file at path. It
// fails with ErrLocked within lockWait if another process has it open, and
// with ErrDamaged if the file is not a readable broker state file; it never
// panics on a damaged file.
func Open(path string, lockWait time.Duration, log *slog.Logger) (s *Store, err error) {
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open broker state: %w", err)
	}
	var db *bolt.DB
	defer func() {
		if r := recover(); r != nil { // bbolt panics on some corrupt pages
			if db != nil {
				db.Close()
			}
			s, err = nil, fmt.Errorf("open broker state %s: %w: %v", path, ErrDamaged, r)
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: lockWait, FreelistType: bolt.FreelistMapType})
	switch {
	case errors.Is(err, bolt.ErrTimeout):
		return nil, fmt.Errorf("open broker state %s: %w", path, ErrLocked)
	case errors.Is(err, bolt.ErrInvalid), errors.Is(err, bolt.ErrChecksum), errors.Is(err, bolt.ErrVersionMismatch):
		return nil, fmt.Errorf("open broker state %s: %w: %v", path, ErrDamaged, err)
	case err != nil:
		return nil, fmt.Errorf("open broker state %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketSessions, bucketSubscriptions, bucketMessages, bucketRetained, bucketMeta} {
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
		return nil, fmt.Errorf("open broker state %s: %w", path, err)
	}
	s = &Store{db: db, log: log, reqs: make(chan request, 1024), done: make(chan struct{})}
	go s.writer()
	return s, nil
}

// State is everything the store holds.
type State struct {
	Sessions      []Session
	Subscriptions []Subscription
	Messages      []Message // by client, in Seq order
	Retained      []Message
}

// Load reads the whole state. A damaged record is an error wrapping
// ErrDamaged, never a panic. Seqs of later messages continue after the
// highest stored.
func (s *Store) Load() (st State, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("load broker state: %w: %v", ErrDamaged, r)
		}
	}()
	var maxSeq uint64
	err = s.db.View(func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketSessions).ForEach(func(k, v []byte) error {
			var ss Session
			if err := json.Unmarshal(v, &ss); err != nil || ss.ClientID != string(k) {
				return fmt.Errorf("%w: session %q: %v", ErrDamaged, k, err)
			}
			st.Sessions = append(st.Sessions, ss)
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.Bucket(bucketSubscriptions).ForEach(func(k, v []byte) error {
			var sub Subscription
			if err := json.Unmarshal(v, &sub); err != nil || !bytes.Equal(k, subscriptionKey(sub.ClientID, sub.Filter)) {
				return fmt.Errorf("%w: subscription %q: %v", ErrDamaged, k, err)
			}
			st.Subscriptions = append(st.Subscriptions, sub)
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.Bucket(bucketMessages).ForEach(func(k, v []byte) error {
			client, rest, err := splitClientKey(k)
			if err != nil || len(rest) != 8 {
				return fmt.Errorf("%w: message key %x", ErrDamaged, k)
			}
			m, err := decodeMessage(v)
			if err != nil {
				return err
			}
			m.ClientID, m.Seq = client, binary.BigEndian.Uint64(rest)
			maxSeq = max(maxSeq, m.Seq)
			st.Messages = append(st.Messages, m)
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketRetained).ForEach(func(k, v []byte) error {
			m, err := decodeMessage(v)
			if err != nil {
				return err
			}
			if m.Topic != string(k) {
				return fmt.Errorf("%w: retained message %q", ErrDamaged, k)
			}
			st.Retained = append(st.Retained, m)
			return nil
		})
	})
	if err != nil {
		return State{}, fmt.Errorf("load broker state: %w", err)
	}
	for cur := s.seq.Load(); cur < maxSeq && !s.seq.CompareAndSwap(cur, maxSeq); cur = s.seq.Load() {
	}
	return st, nil
}

// NextSeq returns a new message sequence number.
func (s *Store) NextSeq() uint64 { return s.seq.Add(1) }

// Write applies ops in one transaction (shared with concurrent writers) and
// returns once it is on disk.
func (s *Store) Write(ops ...Op) error { return <-s.Submit(ops...) }

// Submit queues ops for the next transaction and returns a channel that
// gets its result once it is on disk (or failed). Transactions commit in
// the order their writes were submitted.
func (s *Store) Submit(ops ...Op) <-chan error {
	done := make(chan error, 1)
	if err := s.send(request{ops: ops, done: done}); err != nil {
		done <- err
	}
	return done
}

// WriteAsync queues ops for the next transaction without waiting. A
// failure is logged.
func (s *Store) WriteAsync(ops ...Op) {
	if err := s.send(request{ops: ops}); err != nil {
		s.log.Debug("broker state write after close", "err", err)
	}
}

func (s *Store) send(r request) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	s.reqs <- r
	return nil
}

// Stats counts transactions committed and writes applied.
func (s *Store) Stats() (commits, writes int64) { return s.commits.Load(), s.writes.Load() }

// writer commits whatever has queued up, one transaction at a time.
func (s *Store) writer() {
	defer close(s.done)
	batch := make([]request, 0, 64)
	for r := range s.reqs {
		batch = append(batch[:0], r)
		n := len(r.ops)
	drain:
		for n < maxBatch {
			select {
			case more, ok := <-s.reqs:
				if !ok {
					break drain
				}
				batch = append(batch, more)
				n += len(more.ops)
			default:
				break drain
			}
		}
		err := s.db.Update(func(tx *bolt.Tx) error {
			for _, req := range batch {
				for _, op := range req.ops {
					if err := op.apply(tx); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			err = fmt.Errorf("broker state write: %w", err)
			s.log.Error("broker state write failed", "err", err, "writes", n)
		} else {
			s.commits.Add(1)
			s.writes.Add(int64(n))
		}
		for _, req := range batch {
			if req.done != nil {
				req.done <- err
			}
		}
	}
}

// Close commits what is queued and closes the file. It is idempotent.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.reqs)
		s.mu.Unlock()
		<-s.done
		err = s.db.Close()
	})
	return err
}

// Check runs bbolt's consistency check and decodes every record: a full
// scan for after a crash.
func (s *Store) Check() error {
	if err := s.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return fmt.Errorf("bbolt check: %w", err)
		}
		return nil
	}); err != nil {
		return err
	}
	_, err := s.Load()
	return err
}
