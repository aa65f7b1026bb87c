package token

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Layout of a token before base64url encoding:
//
//	version(1) | key id(4) | token id(16) | expiry ms(8) | HMAC-SHA256 tag(32)
//
// The tag covers everything before it, so neither the ID nor the expiry can
// be altered. 61 bytes encode to 82 base64url characters.
const (
	tokenVersion = 1
	macOffset    = 1 + 4 + IDLen + 8
	rawTokenLen  = macOffset + sha256.Size
	// TokenLen is the length of every token string this package mints.
	TokenLen = (rawTokenLen*8 + 5) / 6
	// keySecretLen is the size of a server key in bytes.
	keySecretLen = 32
)

var tokenEncoding = base64.RawURLEncoding.Strict()

// Claims is what a token string says about itself once its MAC verifies.
type Claims struct {
	KeyID      uint32
	ID         ID
	ExpireTime time.Time
}

// Keyring holds the server keys that mint and verify tokens. The current key
// mints; every key verifies, so keys can rotate without invalidating tokens
// already issued. A Keyring is immutable and safe for concurrent use.
type Keyring struct {
	current uint32
	keys    map[uint32]*serverKey
}

type serverKey struct {
	secret []byte
	macs   sync.Pool // of *macState
}

// macState is a reusable HMAC with scratch space: bytes handed to the
// hash.Hash interface escape to the heap, so they live here, not on the stack.
type macState struct {
	mac hash.Hash
	raw [rawTokenLen]byte
	tag [sha256.Size]byte
}

func newServerKey(secret []byte) *serverKey {
	k := &serverKey{secret: secret}
	k.macs.New = func() any { return &macState{mac: hmac.New(sha256.New, k.secret)} }
	return k
}

func (k *serverKey) get() *macState  { return k.macs.Get().(*macState) }
func (k *serverKey) put(m *macState) { k.macs.Put(m) }

// sum sets m.tag to the tag of m.raw[:macOffset].
func (m *macState) sum() {
	m.mac.Reset()
	m.mac.Write(m.raw[:macOffset])
	m.mac.Sum(m.tag[:0])
}

// keyFile is the JSON form of a Keyring on disk.
type keyFile struct {
	Current uint32       `json:"current"`
	Keys    []keyFileKey `json:"keys"`
}

type keyFileKey struct {
	ID      uint32    `json:"id"`
	Secret  []byte    `json:"secret"` // base64 in JSON
	Created time.Time `json:"created"`
}

// NewKeyring builds a Keyring from raw secrets by key ID; current must be
// one of them. Each secret must be at least 32 bytes.
func NewKeyring(current uint32, secrets map[uint32][]byte) (*Keyring, error) {
	if _, ok := secrets[current]; !ok {
		return nil, fmt.Errorf("keyring: current key %d is not in the keyring", current)
	}
	kr := &Keyring{current: current, keys: make(map[uint32]*serverKey, len(secrets))}
	for id, s := range secrets {
		if len(s) < keySecretLen {
			return nil, fmt.Errorf("keyring: key %d is %d bytes, want at least %d", id, len(s), keySecretLen)
		}
		kr.keys[id] = newServerKey(append([]byte(nil), s...))
	}
	return kr, nil
}

// CurrentKeyID returns the ID of the key that mints new tokens.
func (kr *Keyring) CurrentKeyID() uint32 { return kr.current }

// Mint returns the token string for a token with the given ID and expiry,
// made with the current key.
func (kr *Keyring) Mint(id ID, expire time.Time) string {
	s, _ := kr.mintWith(kr.current, id, expire)
	return s
}

// Reveal rebuilds the token string of a stored record, for an
// administrator's Display request. It fails if the record's key is gone.
func (kr *Keyring) Reveal(r *Record) (string, error) {
	return kr.mintWith(r.KeyID, r.ID, r.ExpireTime)
}

func (kr *Keyring) mintWith(kid uint32, id ID, expire time.Time) (string, error) {
	k, ok := kr.keys[kid]
	if !ok {
		return "", fmt.Errorf("keyring: key %d is not in the keyring", kid)
	}
	m := k.get()
	defer k.put(m)
	raw := &m.raw
	raw[0] = tokenVersion
	binary.BigEndian.PutUint32(raw[1:5], kid)
	copy(raw[5:5+IDLen], id[:])
	binary.BigEndian.PutUint64(raw[5+IDLen:macOffset], uint64(expire.UnixMilli()))
	m.sum()
	copy(raw[macOffset:], m.tag[:])
	return tokenEncoding.EncodeToString(raw[:]), nil
}

// Open verifies a token string's MAC and returns what it claims. It touches
// no store: ErrMalformed if it is not shaped like a token, ErrForged if its
// MAC does not verify under the key it names. The comparison is constant-time.
func (kr *Keyring) Open(tok string) (Claims, error) {
	var raw [rawTokenLen]byte
	var src [TokenLen]byte // a stack copy: decoding from []byte(tok) would allocate
	if len(tok) != TokenLen {
		return Claims{}, ErrMalformed
	}
	copy(src[:], tok)
	n, err := tokenEncoding.Decode(raw[:], src[:])
	if err != nil || n != rawTokenLen || raw[0] != tokenVersion {
		return Claims{}, ErrMalformed
	}
	kid := binary.BigEndian.Uint32(raw[1:5])
	k, ok := kr.keys[kid]
	if !ok {
		return Claims{}, ErrForged
	}
	m := k.get()
	m.raw = raw
	m.sum()
	valid := hmac.Equal(m.tag[:], raw[macOffset:])
	k.put(m)
	if !valid {
		return Claims{}, ErrForged
	}
	c := Claims{KeyID: kid, ExpireTime: time.UnixMilli(int64(binary.BigEndian.Uint64(raw[5+IDLen : macOffset])))}
	copy(c.ID[:], raw[5:5+IDLen])
	return c, nil
}

// LoadOrCreateKeyring reads the keyring file at path, creating it with one
// fresh key (mode 0600) if it does not exist.
func LoadOrCreateKeyring(path string) (*Keyring, error) {
	kf, err := readKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		secret := make([]byte, keySecretLen)
		if _, err := rand.Read(secret); err != nil {
			return nil, fmt.Errorf("keyring: %w", err)
		}
		kf = &keyFile{Current: 1, Keys: []keyFileKey{{ID: 1, Secret: secret, Created: time.Now().UTC()}}}
		if err := createKeyFile(path, kf); err != nil {
			return nil, err
		}
		// Read back what is there: ours, or that of a replica sharing the
		// file that created it first.
		if kf, err = readKeyFile(path); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	return kf.keyring(path)
}

// RotateKeyring adds a fresh key to the keyring file at path and makes it
// the current one; tokens minted with older keys stay valid. Running
// services pick the new key up when they restart. It returns the new key's ID.
func RotateKeyring(path string) (uint32, error) {
	kf, err := readKeyFile(path)
	if err != nil {
		return 0, err
	}
	var next uint32
	for _, k := range kf.Keys {
		next = max(next, k.ID)
	}
	next++
	secret := make([]byte, keySecretLen)
	if _, err := rand.Read(secret); err != nil {
		return 0, fmt.Errorf("keyring: %w", err)
	}
	kf.Keys = append(kf.Keys, keyFileKey{ID: next, Secret: secret, Created: time.Now().UTC()})
	kf.Current = next
	if err := writeKeyFile(path, kf); err != nil {
		return 0, err
	}
	return next, nil
}

func readKeyFile(path string) (*keyFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	var kf keyFile
	if err := json.Unmarshal(b, &kf); err != nil {
		return nil, fmt.Errorf("keyring %s: %w", path, err)
	}
	return &kf, nil
}

func (kf *keyFile) keyring(path string) (*Keyring, error) {
	secrets := make(map[uint32][]byte, len(kf.Keys))
	for _, k := range kf.Keys {
		if _, dup := secrets[k.ID]; dup {
			return nil, fmt.Errorf("keyring %s: key %d appears twice", path, k.ID)
		}
		secrets[k.ID] = k.Secret
	}
	kr, err := NewKeyring(kf.Current, secrets)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return kr, nil
}

// createKeyFile writes kf to path unless path exists: a synced temporary
// file hard-linked into place, atomic and never over another's file.
func createKeyFile(path string, kf *keyFile) error {
	b, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	var suffix [8]byte
	rand.Read(suffix[:])
	tmp := fmt.Sprintf("%s.new-%x", path, suffix)
	if err := WriteFileAtomic(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("keyring: %w", err)
	}
	return nil
}

// writeKeyFile replaces path atomically with kf, mode 0600, synced.
func writeKeyFile(path string, kf *keyFile) error {
	b, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	return WriteFileAtomic(path, append(b, '\n'), 0o600)
}

// WriteFileAtomic writes data to a temporary file beside path with the given
// mode, syncs it, renames it over path and syncs the directory, so that path
// holds either the old or the new content after a crash, never a mix.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
