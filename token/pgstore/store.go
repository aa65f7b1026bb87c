package pgstore

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenmq/tokenmq/token"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Channel is the NOTIFY channel of revocations; the payload is the sequence number.
const Channel = "tokenmq_revocations"

// Advisory lock keys (arbitrary, fixed).
const (
	lockMigrate = 0x746f6b656e6d71 // "tokenmq"
	lockRevoke  = 0x746f6b656e7276
)

// Store is a token.Store on PostgreSQL.
type Store struct {
	pool *pgxpool.Pool
	// fast writes what may be lost in a database crash without harm
	// (nonces, rate counts): synchronous_commit off, no fsync wait per call.
	fast *pgxpool.Pool
}

var _ token.Store = (*Store)(nil)

// Open connects to url (postgres://...), migrates the schema to the latest
// version and returns the store.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres store: %w", redact(err))
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = 32 // pgx's default (the CPU count) queues a busy API
	}
	fastCfg := cfg.Copy()
	fastCfg.MaxConns = max(cfg.MaxConns/2, 2)
	fastCfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres store: %w", redact(err))
	}
	fast, err := pgxpool.NewWithConfig(ctx, fastCfg)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres store: %w", redact(err))
	}
	s := &Store{pool: pool, fast: fast}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// redact keeps passwords out of errors built from connection strings.
func redact(err error) error {
	msg := err.Error()
	if i := strings.Index(msg, "://"); i >= 0 {
		if j := strings.Index(msg[i:], "@"); j > 0 {
			msg = msg[:i+3] + "…" + msg[i+j:]
		}
	}
	return errors.New(msg)
}

// migrate applies the embedded migrations not applied yet, in order, each in
// its own transaction, holding an advisory lock.
func (s *Store) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	slices.Sort(names)
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockMigrate); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS tokenmq_migrations (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var current int
	if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM tokenmq_migrations").Scan(&current); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if current > len(names) {
		return fmt.Errorf("migrate: the database is at schema version %d, this build knows %d: upgrade tokenmq", current, len(names))
	}
	for i, name := range names {
		version := i + 1
		if !strings.HasPrefix(strings.TrimPrefix(name, "migrations/"), fmt.Sprintf("%04d_", version)) {
			return fmt.Errorf("migrate: %s is out of sequence", name)
		}
		if version <= current {
			continue
		}
		sql, err := migrations.ReadFile(name)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, string(sql)); err != nil {
			return fmt.Errorf("migrate %s: %w", name, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO tokenmq_migrations (version) VALUES ($1)", version); err != nil {
			return fmt.Errorf("migrate %s: %w", name, err)
		}
	}
	return tx.Commit(ctx)
}

// Close closes the pools.
func (s *Store) Close() error {
	s.pool.Close()
	s.fast.Close()
	return nil
}

func (s *Store) check(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return token.ErrNotFound
	}
	if strings.Contains(err.Error(), "closed pool") {
		return token.ErrStoreClosed
	}
	return err
}

const recordColumns = `id, key_id, instance_id, access_key_id, name, actions, resources, expire_ms, create_ms, modify_ms, revoked, revoke_ms, revoke_seq, client_ids`

func scanRecord(row pgx.Row) (*token.Record, error) {
	var (
		r                     token.Record
		id                    []byte
		keyID                 int64
		actions               int16
		exp, ct, mt, rvt, rvs int64
	)
	if err := row.Scan(&id, &keyID, &r.InstanceID, &r.AccessKeyID, &r.Name, &actions, &r.Resources,
		&exp, &ct, &mt, &r.Revoked, &rvt, &rvs, &r.ClientIDs); err != nil {
		return nil, err
	}
	if len(id) != token.IDLen {
		return nil, fmt.Errorf("token id of %d bytes", len(id))
	}
	copy(r.ID[:], id)
	r.KeyID, r.Actions = uint32(keyID), token.Actions(actions)
	r.ExpireTime, r.CreateTime, r.ModifyTime = time.UnixMilli(exp), time.UnixMilli(ct), time.UnixMilli(mt)
	r.RevokeSeq = uint64(rvs)
	if r.Revoked {
		r.RevokeTime = time.UnixMilli(rvt)
	}
	if len(r.ClientIDs) == 0 {
		r.ClientIDs = nil
	}
	return &r, nil
}

// Create implements token.Store.
func (s *Store) Create(ctx context.Context, r *token.Record) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO tokens (`+recordColumns+`, gc_ms) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)`,
		r.ID[:], int64(r.KeyID), r.InstanceID, r.AccessKeyID, r.Name, int16(r.Actions), r.Resources,
		r.ExpireTime.UnixMilli(), r.CreateTime.UnixMilli(), r.ModifyTime.UnixMilli(), r.Revoked, revokeMs(r), int64(r.RevokeSeq), clientIDs(r),
		r.GCTime().UnixMilli())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return fmt.Errorf("create token %s: id exists", r.ID)
	}
	return s.check(err)
}

func revokeMs(r *token.Record) int64 {
	if r.Revoked {
		return r.RevokeTime.UnixMilli()
	}
	return 0
}

// Get implements token.Store.
func (s *Store) Get(ctx context.Context, id token.ID) (*token.Record, error) {
	r, err := scanRecord(s.pool.QueryRow(ctx, `SELECT `+recordColumns+` FROM tokens WHERE id = $1`, id[:]))
	return r, s.check(err)
}

// Revoke implements token.Store. Revocations are serialised so that log
// sequence numbers become visible in order.
func (s *Store) Revoke(ctx context.Context, id token.ID, at time.Time) (*token.Record, error) {
	var out *token.Record
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockRevoke); err != nil {
			return err
		}
		r, err := scanRecord(tx.QueryRow(ctx, `SELECT `+recordColumns+` FROM tokens WHERE id = $1 FOR UPDATE`, id[:]))
		if err != nil {
			return err
		}
		if r.Revoked {
			out = r
			return nil
		}
		ms := at.UnixMilli()
		var seq int64
		if err := tx.QueryRow(ctx, `INSERT INTO revocations (id, instance_id, revoke_ms, expire_ms) VALUES ($1,$2,$3,$4) RETURNING seq`,
			id[:], r.InstanceID, ms, r.ExpireTime.UnixMilli()).Scan(&seq); err != nil {
			return err
		}
		r.Revoked, r.RevokeTime, r.RevokeSeq, r.ModifyTime = true, time.UnixMilli(ms), uint64(seq), time.UnixMilli(ms)
		if _, err := tx.Exec(ctx, `UPDATE tokens SET revoked = true, revoke_ms = $2, revoke_seq = $3, modify_ms = $2, gc_ms = $4 WHERE id = $1`,
			id[:], ms, seq, r.GCTime().UnixMilli()); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", Channel, strconv.FormatInt(seq, 10)); err != nil {
			return err
		}
		out = r
		return nil
	})
	if err != nil {
		return nil, s.check(err)
	}
	return out, nil
}

// Kick implements token.Store. Kicks are serialised with revocations so
// that log sequence numbers become visible in order.
func (s *Store) Kick(ctx context.Context, k token.Revocation) (uint64, error) {
	if !k.IsKick() {
		return 0, errors.New("pgstore: a kick needs a client ID")
	}
	var seq int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockRevoke); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `INSERT INTO revocations (id, instance_id, revoke_ms, expire_ms, client_id) VALUES ($1,$2,$3,$4,$5) RETURNING seq`,
			[]byte{}, k.InstanceID, k.RevokeTime.UnixMilli(), k.ExpireTime.UnixMilli(), k.ClientID).Scan(&seq); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", Channel, strconv.FormatInt(seq, 10))
		return err
	})
	if err != nil {
		return 0, s.check(err)
	}
	return uint64(seq), nil
}

// List implements token.Store.
func (s *Store) List(ctx context.Context, instanceID string, after *token.ListPosition, limit int) ([]*token.Record, error) {
	var rows pgx.Rows
	var err error
	if after == nil {
		rows, err = s.pool.Query(ctx, `SELECT `+recordColumns+` FROM tokens WHERE instance_id = $1 ORDER BY create_ms, id LIMIT $2`, instanceID, limit)
	} else {
		rows, err = s.pool.Query(ctx, `SELECT `+recordColumns+` FROM tokens WHERE instance_id = $1 AND (create_ms, id) > ($2, $3) ORDER BY create_ms, id LIMIT $4`,
			instanceID, after.CreateTime.UnixMilli(), after.ID[:], limit)
	}
	if err != nil {
		return nil, s.check(err)
	}
	defer rows.Close()
	var out []*token.Record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, s.check(rows.Err())
}

// Revocations implements token.Store.
func (s *Store) Revocations(ctx context.Context, after uint64, limit int) ([]token.Revocation, error) {
	rows, err := s.pool.Query(ctx, `SELECT seq, id, instance_id, revoke_ms, expire_ms, client_id FROM revocations WHERE seq > $1 ORDER BY seq LIMIT $2`, int64(after), limit)
	if err != nil {
		return nil, s.check(err)
	}
	defer rows.Close()
	var out []token.Revocation
	for rows.Next() {
		var (
			rv       token.Revocation
			seq      int64
			id       []byte
			rvt, exp int64
		)
		if err := rows.Scan(&seq, &id, &rv.InstanceID, &rvt, &exp, &rv.ClientID); err != nil {
			return nil, err
		}
		want := token.IDLen
		if rv.IsKick() {
			want = 0 // a kick names a client ID, not a token
		}
		if len(id) != want {
			return nil, fmt.Errorf("revocation %d: token id of %d bytes", seq, len(id))
		}
		copy(rv.ID[:], id)
		rv.Seq, rv.RevokeTime, rv.ExpireTime = uint64(seq), time.UnixMilli(rvt), time.UnixMilli(exp)
		out = append(out, rv)
	}
	return out, s.check(rows.Err())
}

// RevocationHead implements token.Store: the log's sequence, which GC never lowers.
func (s *Store) RevocationHead(ctx context.Context) (uint64, error) {
	var head int64
	err := s.pool.QueryRow(ctx, `SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM revocations_seq_seq`).Scan(&head)
	return uint64(head), s.check(err)
}

// Empty implements token.Store.
func (s *Store) Empty(ctx context.Context) (bool, error) {
	var any bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM tokens)`).Scan(&any)
	return !any, s.check(err)
}

// Collect implements token.Store.
func (s *Store) Collect(ctx context.Context, cutoff time.Time) (int, error) {
	ms := cutoff.UnixMilli()
	tag, err := s.pool.Exec(ctx, `DELETE FROM tokens WHERE gc_ms < $1`, ms)
	if err != nil {
		return 0, s.check(err)
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM revocations WHERE expire_ms < $1`, ms); err != nil {
		return int(tag.RowsAffected()), s.check(err)
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM nonces WHERE expires_ms < $1`, time.Now().UnixMilli()); err != nil {
		return int(tag.RowsAffected()), s.check(err)
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM client_brokers WHERE seen_ms < $1`, time.Now().Add(-time.Hour).UnixMilli()); err != nil {
		return int(tag.RowsAffected()), s.check(err)
	}
	_, err = s.pool.Exec(ctx, `DELETE FROM rate_windows WHERE window_ms < $1`, time.Now().Add(-time.Minute).UnixMilli())
	return int(tag.RowsAffected()), s.check(err)
}

// Watch calls notify for every revocation any replica commits, and once
// whenever the notification connection is (re)established (revocations
// made meanwhile were not announced to it). It returns when ctx ends.
func (s *Store) Watch(ctx context.Context, notify func()) error {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := s.listen(ctx, notify)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		_ = err // the connection dropped; listen again
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
	return ctx.Err()
}

func (s *Store) listen(ctx context.Context, notify func()) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		return err
	}
	notify() // catch up on whatever came while not listening
	for {
		if _, err := conn.Conn().WaitForNotification(ctx); err != nil {
			conn.Conn().Close(context.Background()) // do not return a listening connection to the pool
			return err
		}
		notify()
	}
}

// clientIDs is the client binding as a column value: never NULL.
func clientIDs(r *token.Record) []string {
	if r.ClientIDs == nil {
		return []string{}
	}
	return r.ClientIDs
}
