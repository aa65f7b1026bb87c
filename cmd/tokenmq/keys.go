package main

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/tokenmq/tokenmq/api"
	"github.com/tokenmq/tokenmq/broker"
	"github.com/tokenmq/tokenmq/config"
	"github.com/tokenmq/tokenmq/token"
)

// Environment variables of the access key with full rights.
const (
	envKeyID     = "TOKENMQ_ACCESS_KEY_ID"
	envKeySecret = "TOKENMQ_ACCESS_KEY_SECRET"
)

// generatedKeyFile is where serve stores the admin key it generates when
// no key is configured.
const generatedKeyFile = "access-key.json"

// storedKey is the JSON form of the generated key file.
type storedKey struct {
	AccessKeyID     string `json:"AccessKeyId"`
	AccessKeySecret string `json:"AccessKeySecret"`
}

// resolveAccessKeys returns the API's keys: the config file's, plus the
// environment's admin key. With neither, it uses the key stored under the
// data dir; on first start it makes one, and store, called once the server
// has started, writes it there and prints it once to stdout (so a start
// that fails, a port already taken, leaves no key behind and prints none).
// store is nil when there is nothing to store.
func resolveAccessKeys(cfg config.Config, getenv func(string) string, stdout io.Writer, log *slog.Logger) (keys []api.AccessKey, store func() error, err error) {
	for _, k := range cfg.AccessKeys {
		keys = append(keys, api.AccessKey{ID: k.ID, Secret: k.Secret, Role: api.Role(k.Role), Instances: k.Instances})
	}
	id, secret := getenv(envKeyID), getenv(envKeySecret)
	switch {
	case id != "" && secret != "":
		keys = append(keys, api.AccessKey{ID: id, Secret: secret, Role: api.RoleAdmin})
	case id != "" || secret != "":
		return nil, nil, fmt.Errorf("set both %s and %s, or neither", envKeyID, envKeySecret)
	}
	if len(keys) > 0 {
		return keys, nil, nil
	}
	path := dataFile(cfg, generatedKeyFile)
	sk, err := readStoredKey(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if sk, err = newKey(); err != nil {
			return nil, nil, err
		}
		store = func() error {
			if err := storeKey(path, sk); err != nil {
				return err
			}
			fmt.Fprintf(stdout, `tokenmq: no access key was configured, so an admin key was generated and stored in
%s (mode 0600). It is shown this once; the token commands read it from
there when run in this directory, or export it:

  export %s=%s
  export %s=%s

`, path, envKeyID, sk.AccessKeyID, envKeySecret, sk.AccessKeySecret)
			return nil
		}
	case err != nil:
		return nil, nil, err
	default:
		log.Info("using the generated access key", "access_key_id", sk.AccessKeyID, "file", path)
	}
	return []api.AccessKey{{ID: sk.AccessKeyID, Secret: sk.AccessKeySecret, Role: api.RoleAdmin}}, store, nil
}

func readStoredKey(path string) (storedKey, error) {
	var sk storedKey
	b, err := os.ReadFile(path)
	if err != nil {
		return sk, err
	}
	if err := json.Unmarshal(b, &sk); err != nil || sk.AccessKeyID == "" || sk.AccessKeySecret == "" {
		return sk, fmt.Errorf("access key file %s is damaged; delete it to generate a new key", path)
	}
	return sk, nil
}

// newKey makes an admin key (not stored yet).
func newKey() (storedKey, error) {
	idBytes := make([]byte, 10)
	secretBytes := make([]byte, 24)
	if _, err := rand.Read(idBytes); err != nil {
		return storedKey{}, err
	}
	if _, err := rand.Read(secretBytes); err != nil {
		return storedKey{}, err
	}
	return storedKey{
		AccessKeyID:     "TMQ" + base32.StdEncoding.EncodeToString(idBytes),
		AccessKeySecret: base64.RawURLEncoding.EncodeToString(secretBytes),
	}, nil
}

// storeKey writes sk to path, mode 0600.
func storeKey(path string, sk storedKey) error {
	b, _ := json.MarshalIndent(sk, "", "  ")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if err := token.WriteFileAtomic(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("storing the generated access key: %w", err)
	}
	return nil
}

func keysCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "rotate" {
		fmt.Fprintln(stderr, "Usage: tokenmq keys rotate [--data-dir DIR]")
		return exitUsage
	}
	fs := newFlagSet("keys rotate", "tokenmq keys rotate [--data-dir DIR]", stderr)
	dataDir := fs.String("data-dir", config.Default().DataDir, "the data `dir` of the token service")
	if err := fs.Parse(args[1:]); err != nil {
		return flagExit(err)
	}
	path := filepath.Join(*dataDir, broker.KeyringFile)
	kid, err := token.RotateKeyring(path)
	if err != nil {
		fmt.Fprintf(stderr, "tokenmq keys rotate: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "server key %d added to %s; the token service mints with it after a restart.\nTokens minted with older keys stay valid.\n", kid, path)
	return exitOK
}
