package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tokenmq/tokenmq/token"
	"github.com/tokenmq/tokenmq/tokenauth"
)

// Roles of a tokenmq serve process.
const (
	RoleAll    = "all"    // broker and token service in one process
	RoleBroker = "broker" // the broker alone, calling a remote token service
	RoleTokens = "tokens" // the token service alone
)

// Config is everything `tokenmq serve` reads. Each field's comment ends with
// its default.
type Config struct {
	// Role is which parts run: all, broker or tokens. Default all.
	Role string `yaml:"role"`
	// DataDir holds the embedded store, the server keys and a generated access key. Default ./data.
	DataDir string `yaml:"data_dir"`
	// MQTTAddr is the MQTT-over-TCP listener. Default ":1883".
	MQTTAddr string `yaml:"mqtt_addr"`
	// WSAddr is the MQTT-over-WebSocket listener (path /mqtt); empty disables it. Default ":8083".
	WSAddr string `yaml:"ws_addr"`
	// TLSAddr is the MQTT-over-TLS listener; it needs TLSCert and TLSKey. Default off.
	TLSAddr string `yaml:"tls_addr"`
	// TLSCert is the PEM certificate (chain) file for TLSAddr. Default none.
	TLSCert string `yaml:"tls_cert"`
	// TLSKey is the PEM private key file for TLSAddr. Default none.
	TLSKey string `yaml:"tls_key"`
	// APIAddr serves the token API (roles all and tokens), /healthz and /readyz. Default ":8080".
	APIAddr string `yaml:"api_addr"`
	// InstanceID is the broker instance this process serves. Default mqtt-local.
	InstanceID string `yaml:"instance_id"`
	// TokenService is the token service URL a broker-role process calls. Default none (in-process).
	TokenService string `yaml:"token_service"`
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string `yaml:"log_level"`
	// LogFormat is text or json. Default text.
	LogFormat string `yaml:"log_format"`
	// Store selects the token store: empty for the embedded bbolt file under
	// DataDir, or postgres://… for PostgreSQL shared by several token-service
	// replicas (the password may be left out and given in PGPASSWORD). Default empty.
	Store string `yaml:"store"`
	// AccessKeys are the API's access keys, besides TOKENMQ_ACCESS_KEY_ID/SECRET. Default none.
	AccessKeys []AccessKey `yaml:"access_keys"`
	// Tokens configures the token service.
	Tokens Tokens `yaml:"tokens"`
	// Broker configures the MQTT broker.
	Broker Broker `yaml:"broker"`
	// API configures the HTTP API.
	API API `yaml:"api"`
	// NATS makes the process (roles all and tokens) the MQTT authority of a
	// NATS cluster through auth callout (SPEC §6.2). Default off.
	NATS NATS `yaml:"nats"`
}

// NATS configures the NATS auth callout. It is on when URL is set.
type NATS struct {
	// URL is the NATS server, or comma-separated servers (one answering
	// connection is kept to each). Default empty (off).
	URL string `yaml:"url"`
	// User is a user listed in the servers' auth_callout.auth_users. Required with url.
	User string `yaml:"user"`
	// Password is User's password; or name an environment variable in PasswordEnv.
	Password string `yaml:"password"`
	// PasswordEnv names the environment variable holding Password. Default none.
	PasswordEnv string `yaml:"password_env"`
	// IssuerSeedFile holds the account nkey seed (SA…) that signs the
	// answers; its public key is the servers' auth_callout.issuer. A
	// relative path is relative to the configuration file. Required with url.
	IssuerSeedFile string `yaml:"issuer_seed_file"`
	// Account is the account authorized clients are placed in. Default MQTT.
	Account string `yaml:"account"`
	// SystemUser is a system-account user (listed in auth_users too), to
	// disconnect clients and follow their connections. Required with url.
	SystemUser string `yaml:"system_user"`
	// SystemPassword is SystemUser's password; or name an environment variable in SystemPasswordEnv.
	SystemPassword string `yaml:"system_password"`
	// SystemPasswordEnv names the environment variable holding SystemPassword. Default none.
	SystemPasswordEnv string `yaml:"system_password_env"`
}

// AccessKey is one API access key.
type AccessKey struct {
	// ID is the AccessKeyId callers sign with. Required.
	ID string `yaml:"id"`
	// Secret is the AccessKeySecret. Give it here or through SecretEnv.
	Secret string `yaml:"secret"`
	// SecretEnv names an environment variable that holds the secret. Default none.
	SecretEnv string `yaml:"secret_env"`
	// Role is admin (every action) or broker (QueryToken only). Default admin.
	Role string `yaml:"role"`
	// Instances limits the key to these instance IDs. Default: every served instance.
	Instances []string `yaml:"instances"`
}

// Tokens configures the token service.
type Tokens struct {
	// Instances are the instance IDs tokens are issued for. Default [InstanceID].
	Instances []string `yaml:"instances"`
	// KeyringFile holds the server keys that mint and verify tokens (mode
	// 0600). Replicas sharing a PostgreSQL store must share this file.
	// Default <data_dir>/keys.json.
	KeyringFile string `yaml:"keyring_file"`
	// MinTTL is the shortest validity ApplyToken accepts. ApsaraMQ's is 60s;
	// lower it only in tests. Default 60s.
	MinTTL time.Duration `yaml:"min_ttl"`
	// MaxTTL caps validity; later ExpireTimes are silently capped. Default 720h (30 days).
	MaxTTL time.Duration `yaml:"max_ttl"`
	// GCInterval is how often expired and revoked records are collected. Default 1h.
	GCInterval time.Duration `yaml:"gc_interval"`
	// GCGrace is how long expired and revoked records are kept. Default 24h.
	GCGrace time.Duration `yaml:"gc_grace"`
	// AcceptKeyLoss lets serve start when the keyring file is missing but the
	// store holds tokens: new keys are made and every existing token stops
	// working. Without it serve refuses to start. Default false.
	AcceptKeyLoss bool `yaml:"accept_key_loss"`
}

// Broker configures the MQTT broker and its auth hook.
type Broker struct {
	// ConnectTimeout closes a connection that sends no CONNECT in time. Default 10s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// MaxConnections caps the MQTT connections of the process (those past it
	// are closed at once), so that the API, the stores and outbound calls
	// keep descriptors. 0: the process's descriptor limit less a reserve
	// (64 and a sixteenth of the limit). Default 0.
	MaxConnections int `yaml:"max_connections"`
	// AllowPlainToken accepts any username with a bare token as password. Default true.
	AllowPlainToken bool `yaml:"allow_plain_token"`
	// DenyAction is what a denied v3.1.1 QoS 1/2 publish gets: ack (acknowledged
	// and dropped, as Mosquitto does) or disconnect. Default ack.
	DenyAction string `yaml:"deny_action"`
	// ExpireNotice is how long before a token expires $SYS/tokenExpireNotice is sent; 0 turns it off. Default 5m.
	ExpireNotice time.Duration `yaml:"expire_notice"`
	// MaxTopicLevels bounds the levels of a topic or filter a client sends;
	// more is refused as malformed (MQTT 5 PUBACK 0x90 / SUBACK 0x8F, MQTT
	// 3.1.1: the connection closes). Default 64.
	MaxTopicLevels int `yaml:"max_topic_levels"`
	// MaxSubscriptions bounds a connection's subscriptions; past it SUBACK
	// 0x97 (MQTT 3.1.1: 0x80). Default 1000.
	MaxSubscriptions int `yaml:"max_subscriptions"`
	// MaxPacketSize bounds an MQTT packet in bytes. Default 1048576.
	MaxPacketSize uint32 `yaml:"max_packet_size"`
	// WriteBufferSize is the per-client buffer outgoing packets are
	// gathered in before a write. Default 2048 (Mochi's).
	WriteBufferSize int `yaml:"write_buffer_size"`
	// MaxPendingWrites bounds a client's queue of outgoing packets (the
	// queue grows with what is pending; an idle client holds none); a QoS 0
	// delivery to a client whose queue is full is dropped. Default 8192 (Mochi's).
	MaxPendingWrites int32 `yaml:"max_pending_writes"`
	// BackpressurePause: a publisher whose QoS 0 message found a subscriber's
	// queue full pauses this long, if that subscriber drains at least
	// backpressure_min_rate packets/s; 0s turns backpressure off. Default 2ms.
	BackpressurePause time.Duration `yaml:"backpressure_pause"`
	// BackpressureMinRate is the drain rate (packets/s) below which a
	// subscriber slows no publisher: its deliveries are dropped. Default 5000.
	BackpressureMinRate float64 `yaml:"backpressure_min_rate"`
	// Persistence is where the broker keeps retained messages, persistent
	// sessions, their subscriptions and their queued and in-flight messages:
	// bolt (a file under data_dir, surviving restarts and crashes) or none
	// (memory only). Default bolt.
	Persistence string `yaml:"persistence"`
	// MaxQueuedMessages bounds the QoS 1/2 messages queued for an offline
	// persistent session; past it new ones are dropped (and counted). Default 1000.
	MaxQueuedMessages int `yaml:"max_queued_messages"`
	// MaxSessionExpiry is the longest an offline persistent session is kept
	// (MQTT 3.1.1 sessions are kept this long; MQTT 5 Session Expiry
	// Intervals are capped to it). Default 72h.
	MaxSessionExpiry time.Duration `yaml:"max_session_expiry"`
	// Cache configures the token validation cache (see tokenauth.CacheConfig
	// for each key and its default).
	Cache tokenauth.CacheConfig `yaml:"cache"`
}

// API configures the HTTP token API.
type API struct {
	// TimestampWindow is how far a signed request's Timestamp may be from server time. Default 15m.
	TimestampWindow time.Duration `yaml:"timestamp_window"`
	// NonceCapacity bounds the replay cache per access key (nonces remembered
	// for it; past that the key's requests get 400 SystemOverFlow, no other
	// key's do). Default 1000000.
	NonceCapacity int `yaml:"nonce_capacity"`
	// MaxBodyBytes bounds a request body. Default 1048576.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// RateLimits are per-access-key requests per second; 0 is unlimited.
	RateLimits RateLimits `yaml:"rate_limits"`
	// EMQXSecret turns on POST /mqtt/auth (EMQX HTTP authentication with
	// tokenmq tokens); callers send "Authorization: Bearer <secret>".
	// TOKENMQ_EMQX_SECRET overrides it. Default empty (off).
	EMQXSecret string `yaml:"emqx_secret"`
}

// RateLimits are per-access-key limits in requests per second; 0 is unlimited.
type RateLimits struct {
	// ApplyToken calls per key. Default 100.
	ApplyToken float64 `yaml:"apply_token"`
	// QueryToken calls per admin key. Default 100.
	QueryToken float64 `yaml:"query_token"`
	// BrokerQueryToken is QueryToken calls per broker-role key. Default 0 (unlimited).
	BrokerQueryToken float64 `yaml:"broker_query_token"`
	// Other actions per key. Default 100.
	Other float64 `yaml:"other"`
}

// Default returns the configuration with every default set.
func Default() Config {
	return Config{
		Role: RoleAll, DataDir: "./data", MQTTAddr: ":1883", WSAddr: ":8083", APIAddr: ":8080",
		InstanceID: "mqtt-local", LogLevel: "info", LogFormat: "text",
		Tokens: Tokens{MinTTL: token.DefaultMinTTL, MaxTTL: token.DefaultMaxTTL, GCInterval: time.Hour, GCGrace: 24 * time.Hour},
		Broker: Broker{
			ConnectTimeout: 10 * time.Second, AllowPlainToken: true, DenyAction: "ack", ExpireNotice: 5 * time.Minute,
			MaxPacketSize: 1 << 20, WriteBufferSize: 2048, MaxPendingWrites: 8192,
			BackpressurePause: 2 * time.Millisecond, BackpressureMinRate: 5000,
			Persistence: "bolt", MaxQueuedMessages: 1000, MaxSessionExpiry: 72 * time.Hour,
			MaxTopicLevels: 64, MaxSubscriptions: 1000,
			Cache: tokenauth.DefaultCacheConfig(),
		},
		API: API{
			TimestampWindow: 15 * time.Minute, NonceCapacity: 1_000_000, MaxBodyBytes: 1 << 20,
			RateLimits: RateLimits{ApplyToken: 100, QueryToken: 100, BrokerQueryToken: 0, Other: 100},
		},
	}
}

// Load reads the YAML file at path over the defaults. Unknown keys are
// errors. Secrets named by secret_env are read from getenv.
func Load(path string, getenv func(string) string) (Config, error) {
	cfg := Default()
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	if err := decodeStrict(b, &cfg); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	if v := getenv("TOKENMQ_EMQX_SECRET"); v != "" {
		cfg.API.EMQXSecret = v
	}
	n := &cfg.NATS
	for _, sec := range []struct {
		value *string
		env   string
		name  string
	}{{&n.Password, n.PasswordEnv, "nats.password"}, {&n.SystemPassword, n.SystemPasswordEnv, "nats.system_password"}} {
		if sec.env == "" {
			continue
		}
		if *sec.value != "" {
			return cfg, fmt.Errorf("config %s: %s and %s_env are both set", path, sec.name, sec.name)
		}
		if *sec.value = getenv(sec.env); *sec.value == "" {
			return cfg, fmt.Errorf("config %s: %s_env: environment variable %s is empty", path, sec.name, sec.env)
		}
	}
	if n.IssuerSeedFile != "" && !filepath.IsAbs(n.IssuerSeedFile) {
		n.IssuerSeedFile = filepath.Join(filepath.Dir(path), n.IssuerSeedFile)
	}
	for i := range cfg.AccessKeys {
		k := &cfg.AccessKeys[i]
		if k.SecretEnv == "" {
			continue
		}
		if k.Secret != "" {
			return cfg, fmt.Errorf("config %s: access key %q has both secret and secret_env", path, k.ID)
		}
		if k.Secret = getenv(k.SecretEnv); k.Secret == "" {
			return cfg, fmt.Errorf("config %s: access key %q: environment variable %s is empty", path, k.ID, k.SecretEnv)
		}
	}
	return cfg, nil
}

func decodeStrict(b []byte, cfg *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errors.New("more than one YAML document")
	}
	return nil
}

// SetDefaults fills what depends on other fields: Tokens.Instances and key roles.
func (c *Config) SetDefaults() {
	if len(c.Tokens.Instances) == 0 {
		c.Tokens.Instances = []string{c.InstanceID}
	}
	if c.NATS.URL != "" && c.NATS.Account == "" {
		c.NATS.Account = "MQTT"
	}
	for i := range c.AccessKeys {
		if c.AccessKeys[i].Role == "" {
			c.AccessKeys[i].Role = "admin"
		}
	}
}

// Validate reports every problem with c, one per line.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !slices.Contains([]string{RoleAll, RoleBroker, RoleTokens}, c.Role) {
		bad("role %q: want all, broker or tokens", c.Role)
	}
	if c.DataDir == "" {
		bad("data_dir is empty")
	}
	if err := token.ValidateInstanceID(c.InstanceID); err != nil {
		bad("instance_id: %v", err)
	}
	for _, in := range c.Tokens.Instances {
		if err := token.ValidateInstanceID(in); err != nil {
			bad("tokens.instances: %v", err)
		}
	}
	if c.APIAddr == "" {
		bad("api_addr is empty")
	}
	if (c.TLSAddr != "") != (c.TLSCert != "" && c.TLSKey != "") {
		bad("tls_addr, tls_cert and tls_key go together: give all three or none")
	}
	if c.Role == RoleBroker && c.TokenService == "" {
		bad("role broker needs token_service (--token-service URL)")
	}
	if c.TokenService != "" && !strings.HasPrefix(c.TokenService, "http://") && !strings.HasPrefix(c.TokenService, "https://") {
		bad("token_service %q: want an http:// or https:// URL", c.TokenService)
	}
	b := c.Broker
	if b.ConnectTimeout <= 0 || b.ExpireNotice < 0 || b.MaxPacketSize < 1024 || b.WriteBufferSize < 512 || b.MaxPendingWrites < 16 {
		bad("broker: connect_timeout must be positive, expire_notice not negative, max_packet_size at least 1024, write_buffer_size at least 512, max_pending_writes at least 16")
	}
	if b.BackpressurePause < 0 || b.BackpressurePause > time.Second || b.BackpressureMinRate < 0 {
		bad("broker: backpressure_pause must be 0s to 1s, backpressure_min_rate not negative")
	}
	if b.MaxTopicLevels < 1 || b.MaxTopicLevels > 65535 || b.MaxSubscriptions < 1 {
		bad("broker: max_topic_levels must be 1 to 65535, max_subscriptions at least 1")
	}
	if b.MaxConnections < 0 {
		bad("broker.max_connections %d: want 0 (from the descriptor limit) or more", b.MaxConnections)
	}
	if b.Persistence != "bolt" && b.Persistence != "none" {
		bad("broker.persistence %q: want bolt or none", b.Persistence)
	}
	if b.MaxQueuedMessages < 1 || b.MaxQueuedMessages > 65535 {
		bad("broker.max_queued_messages %d: want 1 to 65535", b.MaxQueuedMessages)
	}
	if b.MaxSessionExpiry < time.Second || b.MaxSessionExpiry > math.MaxUint32*time.Second {
		bad("broker.max_session_expiry %v: want 1s to %v", b.MaxSessionExpiry, math.MaxUint32*time.Second)
	}
	if b.DenyAction != "ack" && b.DenyAction != "disconnect" {
		bad("broker.deny_action %q: want ack or disconnect", b.DenyAction)
	}
	if cc := b.Cache; cc.Size <= 0 || cc.PositiveTTL <= 0 || cc.NegativeTTL <= 0 || cc.StaleGrace < 0 || cc.QueryTimeout <= 0 {
		bad("broker.cache: size, positive_ttl, negative_ttl and query_timeout must be positive, stale_grace not negative")
	}
	if c.Store != "" && !strings.HasPrefix(c.Store, "postgres://") && !strings.HasPrefix(c.Store, "postgresql://") {
		bad("store %q: want empty (embedded) or a postgres:// URL", redactURL(c.Store))
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.LogLevel) {
		bad("log_level %q: want debug, info, warn or error", c.LogLevel)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("log_format %q: want text or json", c.LogFormat)
	}
	for i, k := range c.AccessKeys {
		if k.ID == "" {
			bad("access_keys[%d]: id is empty", i)
		}
		if k.Role != "admin" && k.Role != "broker" {
			bad("access_keys[%d] (%s): role %q, want admin or broker", i, k.ID, k.Role)
		}
	}
	t := c.Tokens
	if t.MinTTL <= 0 || t.MaxTTL <= 0 || t.GCInterval <= 0 || t.GCGrace < 0 {
		bad("tokens: min_ttl, max_ttl and gc_interval must be positive, gc_grace not negative")
	}
	if t.MaxTTL < t.MinTTL {
		bad("tokens: max_ttl %v is shorter than min_ttl %v", t.MaxTTL, t.MinTTL)
	}
	if n := c.NATS; n.URL != "" {
		if c.Role == RoleBroker {
			bad("nats: the callout runs with the token service: role all or tokens, not broker")
		}
		if n.User == "" || n.SystemUser == "" || n.IssuerSeedFile == "" {
			bad("nats: url needs user, system_user and issuer_seed_file")
		}
		if n.User == n.SystemUser && n.User != "" {
			bad("nats: user and system_user must differ (the callout account and the system account)")
		}
		for _, u := range strings.Split(n.URL, ",") {
			if u = strings.TrimSpace(u); !strings.HasPrefix(u, "nats://") && !strings.HasPrefix(u, "tls://") {
				bad("nats.url %q: want nats:// or tls:// URLs, comma-separated", redactURL(u))
			}
		}
	} else if n.User != "" || n.SystemUser != "" || n.IssuerSeedFile != "" {
		bad("nats: user, system_user and issuer_seed_file are set but url is empty")
	}
	a := c.API
	if a.TimestampWindow <= 0 || a.NonceCapacity <= 0 || a.MaxBodyBytes <= 0 {
		bad("api: timestamp_window, nonce_capacity and max_body_bytes must be positive")
	}
	if r := a.RateLimits; r.ApplyToken < 0 || r.QueryToken < 0 || r.BrokerQueryToken < 0 || r.Other < 0 {
		bad("api.rate_limits: rates must not be negative (0 is unlimited)")
	}
	return errors.Join(errs...)
}

// redactURL hides the password of a URL-like string for messages.
func redactURL(s string) string {
	if at := strings.LastIndex(s, "@"); at > 0 {
		if colon := strings.Index(s[:at], "://"); colon >= 0 {
			return s[:colon+3] + "…@" + s[at+1:]
		}
	}
	return s
}
