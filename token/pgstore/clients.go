package pgstore

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tokenmq/tokenmq/token"
)

// The brokers' client reports (ListClients) in PostgreSQL, so that every
// token-service replica lists the connections of every broker, whichever
// replica each reports to.

var _ token.ClientStore = (*Store)(nil)

// ApplyClientReport implements token.ClientStore.
func (s *Store) ApplyClientReport(ctx context.Context, r token.ClientReport, now time.Time) error {
	resync := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		resync = false
		var inst string
		var seq int64
		err := tx.QueryRow(ctx, `SELECT instance_id, seq FROM client_brokers WHERE broker_id = $1 FOR UPDATE`, r.Broker).Scan(&inst, &seq)
		known := err == nil
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		switch {
		case r.Full:
			if _, err := tx.Exec(ctx, `DELETE FROM client_brokers WHERE broker_id = $1`, r.Broker); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO client_brokers (broker_id, instance_id, seq, seen_ms) VALUES ($1,$2,$3,$4)`,
				r.Broker, r.InstanceID, int64(r.Seq), now.UnixMilli()); err != nil {
				return err
			}
		case !known || inst != r.InstanceID || uint64(seq)+1 != r.Seq:
			resync = true
			_, err := tx.Exec(ctx, `DELETE FROM client_brokers WHERE broker_id = $1`, r.Broker)
			return err
		default:
			if _, err := tx.Exec(ctx, `UPDATE client_brokers SET seq = $2, seen_ms = $3 WHERE broker_id = $1`,
				r.Broker, int64(r.Seq), now.UnixMilli()); err != nil {
				return err
			}
		}
		if len(r.Gone) > 0 {
			gone := make([]int64, len(r.Gone))
			for i, g := range r.Gone {
				gone[i] = int64(g)
			}
			if _, err := tx.Exec(ctx, `DELETE FROM client_conns WHERE broker_id = $1 AND conn = ANY($2)`, r.Broker, gone); err != nil {
				return err
			}
		}
		if len(r.Connected) == 0 {
			return nil
		}
		b := &pgx.Batch{}
		for _, c := range r.Connected {
			ids := make([]string, len(c.TokenIDs))
			for i, id := range c.TokenIDs {
				ids[i] = id.String()
			}
			b.Queue(`INSERT INTO client_conns (broker_id, conn, instance_id, client_id, remote, protocol, token_ids, since_ms, persistent)
				VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)
				ON CONFLICT (broker_id, conn) DO UPDATE SET client_id = $4, remote = $5, protocol = $6, token_ids = $7, since_ms = $8, persistent = $9`,
				r.Broker, int64(c.Conn), r.InstanceID, c.ClientID, c.Remote, int16(c.ProtocolVersion), ids, c.Since.UnixMilli(), c.Persistent)
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return s.check(err)
	}
	if resync {
		return token.ErrResync
	}
	return nil
}

// ReportedClients implements token.ClientStore.
func (s *Store) ReportedClients(ctx context.Context, instanceID string, f token.ClientFilter, seenAfter time.Time) ([]token.ClientInfo, error) {
	q := `SELECT c.broker_id, c.conn, c.client_id, c.remote, c.protocol, c.token_ids, c.since_ms, c.persistent
		FROM client_conns c JOIN client_brokers b USING (broker_id)
		WHERE c.instance_id = $1 AND b.seen_ms > $2 AND ($3 = '' OR c.client_id = $3) AND ($4 = '' OR $4 = ANY(c.token_ids))`
	var tokenID string
	if f.TokenID != nil {
		tokenID = f.TokenID.String()
	}
	rows, err := s.pool.Query(ctx, q, instanceID, seenAfter.UnixMilli(), f.ClientID, tokenID)
	if err != nil {
		return nil, s.check(err)
	}
	defer rows.Close()
	var out []token.ClientInfo
	for rows.Next() {
		var (
			c        token.ClientInfo
			conn     int64
			protocol int16
			ids      []string
			since    int64
		)
		if err := rows.Scan(&c.Broker, &conn, &c.ClientID, &c.Remote, &protocol, &ids, &since, &c.Persistent); err != nil {
			return nil, err
		}
		c.Conn, c.ProtocolVersion, c.Since = uint64(conn), byte(protocol), time.UnixMilli(since)
		for _, s := range ids {
			id, err := token.ParseID(s)
			if err != nil {
				return nil, err
			}
			c.TokenIDs = append(c.TokenIDs, id)
		}
		out = append(out, c)
	}
	return out, s.check(rows.Err())
}
