// Package pgtest gives tests a PostgreSQL schema of their own on the test
// server named by TOKENMQ_TEST_POSTGRES (scripts/postgres.sh starts one).
// Without it tests skip, saying how to get one; with
// TOKENMQ_REQUIRE_POSTGRES set (as CI does) they fail instead.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

// FreshSchema creates an empty schema, drops it when the test ends, and
// returns a URL whose search_path is that schema.
func FreshSchema(t testing.TB) string {
	t.Helper()
	base := os.Getenv("TOKENMQ_TEST_POSTGRES")
	if base == "" {
		if os.Getenv("TOKENMQ_REQUIRE_POSTGRES") != "" {
			t.Fatal("TOKENMQ_REQUIRE_POSTGRES is set but TOKENMQ_TEST_POSTGRES is not")
		}
		t.Skip("no PostgreSQL: run `export TOKENMQ_TEST_POSTGRES=$(scripts/postgres.sh start)` (needs apt-get install postgresql)")
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connecting to the test PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c, err := pgx.Connect(context.Background(), base); err == nil {
			c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			c.Close(context.Background())
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
