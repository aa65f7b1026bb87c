package main

import (
	"context"
	"crypto/tls"
	"net/url"
	"strings"

	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tokenmq/tokenmq/api"
	"github.com/tokenmq/tokenmq/broker"
	"github.com/tokenmq/tokenmq/config"
	"github.com/tokenmq/tokenmq/internal/heapfloor"
)

// shutdownTimeout bounds a graceful shutdown.
const shutdownTimeout = 10 * time.Second

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("serve", "tokenmq serve [flags]", stderr)
	d := config.Default()
	configPath := fs.String("config", "", "YAML config `file` (see configs/); flags win over it")
	dev := fs.Bool("dev", false, "for applications' tests: everything on 127.0.0.1, the fixed printed key "+devKeyID+", tokens from 1 s, expiry notices 5 s ahead, no rate limits, a throwaway data dir (unless --data-dir)")
	checkOnly := fs.Bool("check-config", false, "check the configuration (file, flags, environment), print it with secrets hidden, and exit")
	flagged := config.Default() // flag values land here; only flags given are applied
	fs.StringVar(&flagged.Role, "role", d.Role, "which parts run: all, broker or tokens")
	fs.StringVar(&flagged.DataDir, "data-dir", d.DataDir, "embedded store and generated keys `dir`")
	fs.StringVar(&flagged.MQTTAddr, "mqtt-addr", d.MQTTAddr, "MQTT over TCP `address`")
	fs.StringVar(&flagged.WSAddr, "ws-addr", d.WSAddr, "MQTT over WebSocket `address` (path /mqtt); empty disables")
	fs.StringVar(&flagged.TLSAddr, "tls-addr", d.TLSAddr, "MQTT over TLS `address` (needs --tls-cert and --tls-key)")
	fs.StringVar(&flagged.TLSCert, "tls-cert", d.TLSCert, "TLS certificate `file` (PEM)")
	fs.StringVar(&flagged.TLSKey, "tls-key", d.TLSKey, "TLS private key `file` (PEM)")
	fs.StringVar(&flagged.APIAddr, "api-addr", d.APIAddr, "HTTP `address`: token API, /healthz, /readyz")
	fs.StringVar(&flagged.InstanceID, "instance-id", d.InstanceID, "the broker instance `id` served")
	fs.StringVar(&flagged.TokenService, "token-service", d.TokenService, "role broker: token service `URL`")
	fs.StringVar(&flagged.Store, "store", d.Store, "token store: empty for the embedded one, or a postgres:// `URL`")
	fs.StringVar(&flagged.LogLevel, "log-level", d.LogLevel, "debug, info, warn or error")
	fs.StringVar(&flagged.LogFormat, "log-format", d.LogFormat, "text or json")
	fs.BoolVar(&flagged.Tokens.AcceptKeyLoss, "accept-key-loss", false,
		"start although the server keys are missing while the store holds tokens: new keys are made, and every existing token stops working")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tokenmq serve: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}

	cfg := config.Default()
	if *configPath != "" {
		var err error
		if cfg, err = config.Load(*configPath, os.Getenv); err != nil {
			fmt.Fprintf(stderr, "tokenmq serve: %v\n", err)
			return exitUsage
		}
	}
	dataDirGiven := false
	fs.Visit(func(f *flag.Flag) { dataDirGiven = dataDirGiven || f.Name == "data-dir" })
	if *dev {
		if dataDirGiven {
			cfg.DataDir = flagged.DataDir
		} else {
			dir, err := os.MkdirTemp("", "tokenmq-dev-")
			if err != nil {
				fmt.Fprintf(stderr, "tokenmq serve --dev: %v\n", err)
				return exitFailure
			}
			defer os.RemoveAll(dir)
			cfg.DataDir = dir
		}
		devConfig(&cfg)
	}
	fs.Visit(func(f *flag.Flag) { applyFlag(&cfg, &flagged, f.Name) })
	cfg.SetDefaults()
	if *dev && cfg.Role != config.RoleAll {
		fmt.Fprintln(stderr, "tokenmq serve: --dev runs everything in one process (role all)")
		return exitUsage
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "tokenmq serve: invalid configuration:\n%v\n", err)
		return exitUsage
	}
	if *checkOnly {
		return checkConfig(cfg, stdout, stderr)
	}
	log := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)

	opts := broker.Options{Config: cfg, Logger: log,
		ClientKey: api.AccessKey{ID: os.Getenv(envKeyID), Secret: os.Getenv(envKeySecret)}}
	var storeKey func() error
	if *dev {
		opts.AccessKeys = []api.AccessKey{{ID: devKeyID, Secret: devKeySecret, Role: api.RoleAdmin}}
	} else if cfg.Role != config.RoleBroker {
		keys, store, err := resolveAccessKeys(cfg, os.Getenv, stdout, log)
		if err != nil {
			fmt.Fprintf(stderr, "tokenmq serve: %v\n", err)
			return exitUsage
		}
		opts.AccessKeys, storeKey = keys, store
	}
	heapfloor.Keep(heapfloor.Default) // GC pacing for small heaps (see the package)
	srv, err := broker.New(opts)
	if err != nil {
		fmt.Fprintf(stderr, "tokenmq serve: %s\n", oneLine(err))
		return exitUsage
	}
	if err := srv.Start(ctx); err != nil {
		log.Error("start failed", "err", err)
		return exitFailure
	}
	if storeKey != nil { // a generated key: kept and shown only by a start that worked
		if err := storeKey(); err != nil {
			log.Error("start failed", "err", err)
			srv.Shutdown(context.Background())
			return exitFailure
		}
	}
	if *dev {
		printDevBanner(stdout, srv, cfg)
	}
	<-ctx.Done()
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Error("shutdown", "err", err)
		return exitFailure
	}
	return exitOK
}

// applyFlag copies the named flag's value from flagged into cfg.
func applyFlag(cfg, flagged *config.Config, name string) {
	switch name {
	case "role":
		cfg.Role = flagged.Role
	case "data-dir":
		cfg.DataDir = flagged.DataDir
	case "mqtt-addr":
		cfg.MQTTAddr = flagged.MQTTAddr
	case "ws-addr":
		cfg.WSAddr = flagged.WSAddr
	case "tls-addr":
		cfg.TLSAddr = flagged.TLSAddr
	case "tls-cert":
		cfg.TLSCert = flagged.TLSCert
	case "tls-key":
		cfg.TLSKey = flagged.TLSKey
	case "api-addr":
		cfg.APIAddr = flagged.APIAddr
	case "instance-id":
		cfg.InstanceID = flagged.InstanceID
	case "token-service":
		cfg.TokenService = flagged.TokenService
	case "store":
		cfg.Store = flagged.Store
	case "log-level":
		cfg.LogLevel = flagged.LogLevel
	case "log-format":
		cfg.LogFormat = flagged.LogFormat
	case "accept-key-loss":
		cfg.Tokens.AcceptKeyLoss = flagged.Tokens.AcceptKeyLoss
	}
}

func newLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	lv.UnmarshalText([]byte(level)) // validated by config
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// dataFile is a file under the data dir.
func dataFile(cfg config.Config, name string) string { return filepath.Join(cfg.DataDir, name) }

// checkConfig checks what serve would refuse before binding anything —
// access keys, TLS files, URLs — and prints the effective configuration
// with secrets hidden. Nothing is written.
func checkConfig(cfg config.Config, stdout, stderr io.Writer) int {
	var problems []string
	keys := make([]api.AccessKey, 0, len(cfg.AccessKeys)+1)
	for _, k := range cfg.AccessKeys {
		keys = append(keys, api.AccessKey{ID: k.ID, Secret: k.Secret, Role: api.Role(k.Role), Instances: k.Instances})
	}
	if id, secret := os.Getenv(envKeyID), os.Getenv(envKeySecret); id != "" || secret != "" {
		keys = append(keys, api.AccessKey{ID: id, Secret: secret, Role: api.RoleAdmin})
	}
	if _, err := api.NewKeys(keys); err != nil {
		problems = append(problems, err.Error())
	}
	switch {
	case cfg.Role == config.RoleBroker && (os.Getenv(envKeyID) == "" || os.Getenv(envKeySecret) == ""):
		problems = append(problems, "role broker signs with "+envKeyID+" and "+envKeySecret+"; set them")
	case cfg.Role != config.RoleBroker && len(keys) == 0:
		fmt.Fprintf(stdout, "# no access key configured: serve would generate one in %s\n", dataFile(cfg, generatedKeyFile))
	}
	if cfg.TLSAddr != "" {
		if _, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey); err != nil {
			problems = append(problems, "tls: "+err.Error())
		}
	}
	if cfg.NATS.URL != "" {
		if kp, err := broker.LoadIssuer(cfg.NATS.IssuerSeedFile); err != nil {
			problems = append(problems, err.Error())
		} else {
			pub, _ := kp.PublicKey()
			fmt.Fprintf(stdout, "# nats: the servers' auth_callout.issuer must be %s\n", pub)
		}
	}
	shown := cfg
	shown.AccessKeys = append([]config.AccessKey(nil), cfg.AccessKeys...)
	for i := range shown.AccessKeys {
		if shown.AccessKeys[i].Secret != "" {
			shown.AccessKeys[i].Secret = "<hidden>"
		}
	}
	if shown.API.EMQXSecret != "" {
		shown.API.EMQXSecret = "<hidden>"
	}
	for _, p := range []*string{&shown.NATS.Password, &shown.NATS.SystemPassword} {
		if *p != "" {
			*p = "<hidden>"
		}
	}
	if u, err := url.Parse(shown.Store); err == nil && u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "hidden")
			shown.Store = u.String()
		}
	}
	out, err := yaml.Marshal(shown)
	if err != nil {
		fmt.Fprintf(stderr, "tokenmq serve: %v\n", err)
		return exitFailure
	}
	stdout.Write(out)
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "tokenmq serve: invalid configuration:\n%s\n", strings.Join(problems, "\n"))
		return exitUsage
	}
	fmt.Fprintln(stderr, "configuration OK")
	return exitOK
}
