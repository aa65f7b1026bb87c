package token

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

func testKeyring(t testing.TB) *Keyring {
	t.Helper()
	kr, err := NewKeyring(1, map[uint32][]byte{1: bytes.Repeat([]byte{1}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

var base64url = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func TestMintOpenRoundTrip(t *testing.T) {
	kr := testKeyring(t)
	id, _ := NewID()
	exp := time.UnixMilli(1_900_000_000_123)
	tok := kr.Mint(id, exp)
	if len(tok) != TokenLen || len(tok) > 128 || !base64url.MatchString(tok) {
		t.Fatalf("token %q: length %d, want %d base64url characters", tok, len(tok), TokenLen)
	}
	c, err := kr.Open(tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != id || !c.ExpireTime.Equal(exp) || c.KeyID != 1 {
		t.Fatalf("claims %+v", c)
	}
}

// Every single-character change of a token is caught: the MAC covers all of
// it, and the encoding is strict, so no two strings name one token.
func TestOpenRejectsEveryAlteration(t *testing.T) {
	kr := testKeyring(t)
	id, _ := NewID()
	tok := kr.Mint(id, time.UnixMilli(1_900_000_000_000))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := range len(tok) {
		for _, c := range []byte(alphabet) {
			if c == tok[i] {
				continue
			}
			alt := tok[:i] + string(c) + tok[i+1:]
			if _, err := kr.Open(alt); !errors.Is(err, ErrForged) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("altered token (byte %d -> %c) opened: %v", i, c, err)
			}
		}
	}
}

func TestOpenMalformed(t *testing.T) {
	kr := testKeyring(t)
	id, _ := NewID()
	tok := kr.Mint(id, time.UnixMilli(1_900_000_000_000))
	for name, s := range map[string]string{
		"empty":          "",
		"short":          tok[:len(tok)-1],
		"long":           tok + "A",
		"std alphabet":   tok[:10] + "+" + tok[11:],
		"padding":        tok[:len(tok)-1] + "=",
		"pipe":           tok[:5] + "|" + tok[6:],
		"spaces":         " " + tok[1:],
		"wrong version":  "B" + tok[1:],
		"not base64 utf": tok[:len(tok)-2] + "é",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := kr.Open(s); !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrForged) {
				t.Fatalf("Open = %v, want ErrMalformed or ErrForged", err)
			}
		})
	}
}

func TestOpenUnknownKeyIsForged(t *testing.T) {
	other, err := NewKeyring(1, map[uint32][]byte{1: bytes.Repeat([]byte{2}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := NewID()
	tok := other.Mint(id, time.UnixMilli(1_900_000_000_000))
	if _, err := testKeyring(t).Open(tok); !errors.Is(err, ErrForged) {
		t.Fatalf("token of another server key: %v, want ErrForged", err)
	}
}

func TestKeyringFileCreateAndRotate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	kr, err := LoadOrCreateKeyring(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	id, _ := NewID()
	exp := time.UnixMilli(1_900_000_000_000)
	old := kr.Mint(id, exp)

	again, err := LoadOrCreateKeyring(path)
	if err != nil {
		t.Fatal(err)
	}
	if again.Mint(id, exp) != old {
		t.Fatal("reloading the key file changed the key")
	}

	kid, err := RotateKeyring(path)
	if err != nil || kid != 2 {
		t.Fatalf("RotateKeyring = %d, %v; want 2", kid, err)
	}
	rotated, err := LoadOrCreateKeyring(path)
	if err != nil {
		t.Fatal(err)
	}
	if rotated.CurrentKeyID() != 2 {
		t.Fatalf("current key %d after rotation, want 2", rotated.CurrentKeyID())
	}
	if c, err := rotated.Open(old); err != nil || c.KeyID != 1 {
		t.Fatalf("token of the old key after rotation: %+v, %v", c, err)
	}
	fresh := rotated.Mint(id, exp)
	if fresh == old {
		t.Fatal("rotation did not change the minting key")
	}
	if c, _ := rotated.Open(fresh); c.KeyID != 2 {
		t.Fatalf("new token minted with key %d, want 2", c.KeyID)
	}
	// Display of an old record rebuilds the old token.
	if tok, err := rotated.Reveal(&Record{ID: id, KeyID: 1, ExpireTime: exp}); err != nil || tok != old {
		t.Fatalf("Reveal of a key-1 record = %q, %v", tok, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode after rotation %v, want 0600", fi.Mode().Perm())
	}
}

func TestKeyringFileRejectsBadContent(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]any{
		"current missing": keyFile{Current: 3, Keys: []keyFileKey{{ID: 1, Secret: make([]byte, 32)}}},
		"short secret":    keyFile{Current: 1, Keys: []keyFileKey{{ID: 1, Secret: make([]byte, 8)}}},
		"duplicate id":    keyFile{Current: 1, Keys: []keyFileKey{{ID: 1, Secret: make([]byte, 32)}, {ID: 1, Secret: make([]byte, 32)}}},
		"not json":        "{",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			b, _ := json.Marshal(content)
			if s, ok := content.(string); ok {
				b = []byte(s)
			}
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := LoadOrCreateKeyring(path); err == nil {
				t.Fatal("bad key file accepted")
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	kr := testKeyring(b)
	id, _ := NewID()
	tok := kr.Mint(id, time.UnixMilli(1_900_000_000_000))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := kr.Open(tok); err != nil {
			b.Fatal(err)
		}
	}
}

// Replicas sharing a key file and starting together end up with one key.
func TestKeyringConcurrentCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	id, _ := NewID()
	exp := time.UnixMilli(1_900_000_000_000)
	toks := make(chan string, 8)
	for range 8 {
		go func() {
			kr, err := LoadOrCreateKeyring(path)
			if err != nil {
				toks <- "error: " + err.Error()
				return
			}
			toks <- kr.Mint(id, exp)
		}()
	}
	first := <-toks
	for range 7 {
		if tok := <-toks; tok != first {
			t.Fatalf("two processes minted with different keys (%q vs %q)", first[:12], tok[:12])
		}
	}
}
