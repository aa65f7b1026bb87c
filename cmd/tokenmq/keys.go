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
// data dir, generating it (and printing it once to stdout) on first start.
func resolveAccessKeys(cfg config.Config, getenv func(string) string, stdout io.Writer, log *slog.Logger) ([]api.AccessKey, error) {
	var keys []api.AccessKey
	for _, k := range cfg.AccessKeys {
		keys = append(keys, api.AccessKey{ID: k.ID, Secret: k.Secret, Role: api.Role(k.Role), Instances: k.Instances})
	}
	id, secret := getenv(envKeyID), getenv(envKeySecret)
	switch {
	case id != "" && secret != "":
		keys = append(keys, api.AccessKey{ID: id, Secret: secret, Role: api.RoleAdmin})
	case id != "" || secret != "":
		return nil, fmt.Errorf("set both %s and %s, or neither", envKeyID, envKeySecret)
	}
	if len(keys) > 0 {
		return keys, nil
	}
	path := dataFile(cfg, generatedKeyFile)
	sk, err := readStoredKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		if sk, err = generateKey(path); err != nil {
			return nil, err
		}
		fmt.Fprintf(stdout, `tokenmq: no access key was configured, so an admin key was generated and stored in
%s (mode 0600). It is shown this once; the token commands read it from
there when run in this directory, or export it:

  export %s=%s
  export %s=%s

`, path, envKeyID, sk.AccessKeyID, envKeySecret, sk.AccessKeySecret)
	} else if err != nil {
		return nil, err
	} else {
		log.Info("using the generated access key", "access_key_id", sk.AccessKeyID, "file", path)
	}
	return []api.AccessKey{{ID: sk.AccessKeyID, Secret: sk.AccessKeySecret, Role: api.RoleAdmin}}, nil
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

func generateKey(path string) (storedKey, error) {
	idBytes := make([]byte, 10)
	secretBytes := make([]byte, 24)
	if _, err := rand.Read(idBytes); err != nil {
		return storedKey{}, err
	}
	if _, err := rand.Read(secretBytes); err != nil {
		return storedKey{}, err
	}
	sk := storedKey{
		AccessKeyID:     "TMQ" + base32.StdEncoding.EncodeToString(idBytes),
		AccessKeySecret: base64.RawURLEncoding.EncodeToString(secretBytes),
	}
	b, _ := json.MarshalIndent(sk, "", "  ")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return sk, err
	}
	if err := token.WriteFileAtomic(path, append(b, '\n'), 0o600); err != nil {
		return sk, fmt.Errorf("storing the generated access key: %w", err)
	}
	return sk, nil
}

// keysCommand runs `tokenmq keys rotate`.
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
