package mosqauth

import (
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tokenmq/tokenmq/tokenauth"
)

// Options configure the plugin (SPEC §6.3): mosquitto.conf's
// plugin_opt_<key> lines, and for the connection to the token service
// the environment (a plugin_opt_ value wins over it).
type Options struct {
	// TokenService is the token service's base URL (token_service,
	// TOKENMQ_TOKEN_SERVICE). Required.
	TokenService string
	// InstanceID is the instance the broker serves (instance_id,
	// TOKENMQ_INSTANCE_ID). Default mqtt-local.
	InstanceID string
	// AccessKeyID and AccessKeySecret sign QueryToken and the revocation
	// feed: a key of role broker (access_key_id, access_key_secret;
	// TOKENMQ_ACCESS_KEY_ID, TOKENMQ_ACCESS_KEY_SECRET). Required.
	AccessKeyID, AccessKeySecret string
	// AllowPlain accepts the plain form, any username with a bare token
	// as password (allow_plain_token). Default true, as tokenmq's broker.
	AllowPlain bool
	// ExpireNotice is how long before a token's expiry the client gets
	// $SYS/tokenExpireNotice (expire_notice); 0 turns it off. Default 5m.
	ExpireNotice time.Duration
	// Cache sizes the validation cache (cache_size, cache_positive_ttl,
	// cache_negative_ttl, stale_grace, query_timeout). query_timeout,
	// default 1s here, is also the longest a CONNECT holds Mosquitto's
	// loop while its token is checked.
	Cache tokenauth.CacheConfig
	// LogLevel is the least level of the plugin's lines in Mosquitto's log
	// (log_level: debug, info, warn, error). Default info: a line per
	// connect decision, disconnect and renewal.
	LogLevel slog.Level
}

// optionKeys are the plugin_opt_ keys the plugin knows; any other is an error.
var optionKeys = []string{"token_service", "instance_id", "access_key_id", "access_key_secret", "allow_plain_token",
	"expire_notice", "cache_size", "cache_positive_ttl", "cache_negative_ttl", "stale_grace", "query_timeout", "log_level"}

var optionEnv = map[string]string{
	"token_service": "TOKENMQ_TOKEN_SERVICE", "instance_id": "TOKENMQ_INSTANCE_ID",
	"access_key_id": "TOKENMQ_ACCESS_KEY_ID", "access_key_secret": "TOKENMQ_ACCESS_KEY_SECRET",
}

// ParseOptions reads the plugin's options: opts are mosquitto.conf's
// plugin_opt_ lines without the prefix; getenv looks up the environment.
func ParseOptions(opts map[string]string, getenv func(string) string) (Options, error) {
	for k := range opts {
		known := false
		for _, o := range optionKeys {
			known = known || k == o
		}
		if !known {
			return Options{}, fmt.Errorf("%w: unknown option plugin_opt_%s (known: %s)", ErrOption, k, strings.Join(optionKeys, ", "))
		}
	}
	get := func(k string) string {
		if v, ok := opts[k]; ok {
			return strings.TrimSpace(v)
		}
		if e := optionEnv[k]; e != "" {
			return strings.TrimSpace(getenv(e))
		}
		return ""
	}
	o := Options{TokenService: get("token_service"), InstanceID: get("instance_id"),
		AccessKeyID: get("access_key_id"), AccessKeySecret: get("access_key_secret"),
		AllowPlain: true, ExpireNotice: 5 * time.Minute}
	if o.InstanceID == "" {
		o.InstanceID = "mqtt-local"
	}
	if o.TokenService == "" {
		return Options{}, fmt.Errorf("%w: plugin_opt_token_service (or TOKENMQ_TOKEN_SERVICE) is required: the token service's URL, e.g. http://tokens:8080", ErrOption)
	}
	if u, err := url.Parse(o.TokenService); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Options{}, fmt.Errorf("%w: plugin_opt_token_service %q is not an http(s) URL", ErrOption, o.TokenService)
	}
	if o.AccessKeyID == "" || o.AccessKeySecret == "" {
		return Options{}, fmt.Errorf("%w: plugin_opt_access_key_id and plugin_opt_access_key_secret (or TOKENMQ_ACCESS_KEY_ID and TOKENMQ_ACCESS_KEY_SECRET) are required: a key of role broker", ErrOption)
	}
	var err error
	if v := get("allow_plain_token"); v != "" {
		if o.AllowPlain, err = strconv.ParseBool(v); err != nil {
			return Options{}, fmt.Errorf("%w: plugin_opt_allow_plain_token %q: want true or false", ErrOption, v)
		}
	}
	durations := []struct {
		key string
		to  *time.Duration
		min time.Duration
	}{
		{"expire_notice", &o.ExpireNotice, 0}, {"cache_positive_ttl", &o.Cache.PositiveTTL, time.Millisecond},
		{"cache_negative_ttl", &o.Cache.NegativeTTL, time.Millisecond}, {"stale_grace", &o.Cache.StaleGrace, -1 << 62},
		{"query_timeout", &o.Cache.QueryTimeout, time.Millisecond},
	}
	o.Cache.QueryTimeout = time.Second
	for _, d := range durations {
		v := get(d.key)
		if v == "" {
			continue
		}
		x, err := time.ParseDuration(v)
		if err != nil || x < d.min {
			return Options{}, fmt.Errorf("%w: plugin_opt_%s %q: want a duration such as 30s", ErrOption, d.key, v)
		}
		*d.to = x
	}
	if o.Cache.QueryTimeout > 10*time.Second {
		return Options{}, fmt.Errorf("%w: plugin_opt_query_timeout %v: at most 10s (Mosquitto's loop waits for it)", ErrOption, o.Cache.QueryTimeout)
	}
	if v := get("log_level"); v != "" {
		if err := o.LogLevel.UnmarshalText([]byte(v)); err != nil {
			return Options{}, fmt.Errorf("%w: plugin_opt_log_level %q: want debug, info, warn or error", ErrOption, v)
		}
	}
	if v := get("cache_size"); v != "" {
		if o.Cache.Size, err = strconv.Atoi(v); err != nil || o.Cache.Size < 1 {
			return Options{}, fmt.Errorf("%w: plugin_opt_cache_size %q: want a positive number", ErrOption, v)
		}
	}
	return o, nil
}
