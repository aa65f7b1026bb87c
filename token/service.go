package token

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tokenmq/tokenmq/acl"
)

// Limits of ApplyToken, as ApsaraMQ for MQTT has them.
const (
	// MaxResources is the most topic filters one token may carry.
	MaxResources = 100
	// DefaultMinTTL is the shortest validity ApplyToken accepts.
	DefaultMinTTL = 60 * time.Second
	// DefaultMaxTTL is the longest validity; later expiry times are capped to it.
	DefaultMaxTTL = 30 * 24 * time.Hour
	// MaxNameLength is the longest token Name, in characters.
	MaxNameLength = 64
	// MaxPageSize is the largest ListTokens page.
	MaxPageSize = 100
)

// transitAllowance is how much of the minimum TTL may have passed while a
// request was in flight: a client that sends now+60 s (as ApsaraMQ's own
// documentation computes it) must not be refused because the request took
// a few milliseconds to arrive. 59 s ahead is still refused.
const transitAllowance = 500 * time.Millisecond

var instanceIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$`)

// ValidateInstanceID reports whether id is an acceptable instance ID: 1 to 64
// characters of letters, digits and "_.:-", starting with a letter or digit.
func ValidateInstanceID(id string) error {
	if !instanceIDPattern.MatchString(id) {
		return fmt.Errorf("instance id %q: want 1 to 64 of A-Z a-z 0-9 _ . : - starting with a letter or digit", id)
	}
	return nil
}

// ServiceConfig configures a Service. Zero values take the defaults.
type ServiceConfig struct {
	// Instances are the instance IDs the service issues tokens for. Required.
	Instances []string
	// MinTTL is the shortest validity ApplyToken accepts. Default 60s.
	MinTTL time.Duration
	// MaxTTL caps the validity of a token. Default 30 days.
	MaxTTL time.Duration
	// GCGrace is how long expired and revoked records are kept. Default 24h.
	GCGrace time.Duration
	// ReportTTL is how long a broker's reported connections are listed
	// after its last report. Default DefaultReportTTL.
	ReportTTL time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives the service's logs. Default slog.Default().
	Logger *slog.Logger
}

// Service applies for, queries, lists and revokes tokens. It is safe for
// concurrent use.
type Service struct {
	store     Store
	keys      *Keyring
	instances map[string]bool
	minTTL    time.Duration
	maxTTL    time.Duration
	gcGrace   time.Duration
	now       func() time.Time
	log       *slog.Logger
	revoked   notifier    // wakes Feed calls waiting for revocations
	clients   ClientStore // the connections brokers report
	localMu   sync.Mutex
	local     []localClients // brokers in this process (AddLocalClients)
	reportTTL time.Duration

	queries, lookups, applies, revocations, storeErrors atomic.Int64
}

// Stats are a Service's counters since it started.
type Stats struct {
	Queries      int64 // Query calls (QueryToken, broker validations)
	StoreLookups int64 // store reads made by them: forged, malformed and expired tokens make none
	Applies      int64 // tokens issued
	Revocations  int64 // tokens revoked (first revocation only)
	StoreErrors  int64 // store reads and writes that failed (damage, outages)
}

// Stats returns the service's counters.
func (s *Service) Stats() Stats {
	return Stats{Queries: s.queries.Load(), StoreLookups: s.lookups.Load(), Applies: s.applies.Load(), Revocations: s.revocations.Load(),
		StoreErrors: s.storeErrors.Load()}
}

// NewService returns a Service over store, minting with keys.
func NewService(store Store, keys *Keyring, cfg ServiceConfig) (*Service, error) {
	if len(cfg.Instances) == 0 {
		return nil, fmt.Errorf("token service: no instances configured")
	}
	s := &Service{
		store: store, keys: keys, instances: make(map[string]bool),
		minTTL: cfg.MinTTL, maxTTL: cfg.MaxTTL, gcGrace: cfg.GCGrace, now: cfg.Now, log: cfg.Logger,
	}
	for _, in := range cfg.Instances {
		if err := ValidateInstanceID(in); err != nil {
			return nil, fmt.Errorf("token service: %w", err)
		}
		s.instances[in] = true
	}
	if s.minTTL <= 0 {
		s.minTTL = DefaultMinTTL
	}
	if s.maxTTL <= 0 {
		s.maxTTL = DefaultMaxTTL
	}
	if s.maxTTL < s.minTTL {
		return nil, fmt.Errorf("token service: max ttl %v is shorter than min ttl %v", s.maxTTL, s.minTTL)
	}
	if s.gcGrace <= 0 {
		s.gcGrace = 24 * time.Hour
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.reportTTL = cmp.Or(cfg.ReportTTL, DefaultReportTTL)
	if cs, ok := store.(ClientStore); ok {
		s.clients = cs // shared by the replicas on that store
	} else {
		s.clients = &registry{brokers: make(map[string]*brokerClients)}
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s, nil
}

// Serves reports whether the service issues tokens for instanceID.
func (s *Service) Serves(instanceID string) bool { return s.instances[instanceID] }

// ApplyRequest is a request for a new token.
type ApplyRequest struct {
	InstanceID  string
	AccessKeyID string // the caller, recorded in the token
	Name        string // optional
	Resources   []string
	ClientIDs   []string // optional client binding (NormalizeClientIDs); nil: any client ID
	Actions     Actions
	ExpireTime  time.Time
}

// Apply issues a token. Bad parameters give a *ParamError and store nothing.
// The token is durable when Apply returns.
func (s *Service) Apply(ctx context.Context, req ApplyRequest) (string, *Record, error) {
	if !s.Serves(req.InstanceID) {
		return "", nil, ErrInstanceNotServed
	}
	resources, err := NormalizeResources(req.Resources)
	if err != nil {
		return "", nil, err
	}
	var clientIDs []string
	if req.ClientIDs != nil {
		if clientIDs, err = NormalizeClientIDs(req.ClientIDs); err != nil {
			return "", nil, err
		}
	}
	if req.Actions.String() == "" {
		return "", nil, paramErrorf("Actions", "use R, W or R,W")
	}
	if err := validateName(req.Name); err != nil {
		return "", nil, err
	}
	now := ms(s.now())
	exp := ms(req.ExpireTime)
	if exp.Sub(now) < s.minTTL-transitAllowance {
		return "", nil, paramErrorf("ExpireTime", "%d is %s from now; it must be at least %s in the future (a Unix time in milliseconds)",
			exp.UnixMilli(), exp.Sub(now).Round(time.Millisecond), s.minTTL)
	}
	if limit := now.Add(s.maxTTL); exp.After(limit) {
		exp = limit
	}
	id, err := NewID()
	if err != nil {
		return "", nil, err
	}
	rec := &Record{
		ID: id, KeyID: s.keys.CurrentKeyID(), InstanceID: req.InstanceID, AccessKeyID: req.AccessKeyID,
		Name: req.Name, Actions: req.Actions, Resources: resources, ClientIDs: clientIDs,
		ExpireTime: exp, CreateTime: now, ModifyTime: now,
	}
	if err := s.store.Create(ctx, rec); err != nil {
		return "", nil, fmt.Errorf("apply token: %w", s.storeFailed("apply", err))
	}
	s.applies.Add(1)
	return s.keys.Mint(id, exp), rec, nil
}

// Query validates a token of an instance. It returns the record when the
// token is valid; otherwise ErrMalformed, ErrForged, ErrExpired, ErrNotFound,
// ErrWrongInstance or ErrRevoked (see IsDenied), or another error if the
// store failed. Malformed, forged and expired tokens cost no store lookup.
func (s *Service) Query(ctx context.Context, instanceID, tok string) (*Record, error) {
	if !s.Serves(instanceID) {
		return nil, ErrInstanceNotServed
	}
	s.queries.Add(1)
	c, err := s.keys.Open(tok)
	if err != nil {
		return nil, err
	}
	now := s.now()
	if !now.Before(c.ExpireTime) {
		return nil, ErrExpired
	}
	s.lookups.Add(1)
	rec, err := s.store.Get(ctx, c.ID)
	if err != nil {
		return nil, s.storeFailed("query", err)
	}
	if rec.InstanceID != instanceID {
		return nil, ErrWrongInstance
	}
	if !rec.ExpireTime.Equal(c.ExpireTime) || rec.KeyID != c.KeyID {
		// The MAC verified, so the store disagrees with what we minted.
		s.log.Error("token record does not match its token", "token_id", rec.ID.String())
		return nil, ErrForged
	}
	if err := rec.Check(now); err != nil {
		return nil, err
	}
	return rec, nil
}

// storeFailed logs and counts a store error that is not a plain "not
// found" (a damaged store, an unreachable database) and returns it: the
// request fails, as an outage (SPEC §4).
func (s *Service) storeFailed(op string, err error) error {
	if errors.Is(err, ErrNotFound) || errors.Is(err, context.Canceled) {
		return err
	}
	s.storeErrors.Add(1)
	s.log.Error("token store failed", "op", op, "err", err)
	return err
}

// Revoke revokes a token. It is idempotent: revoking a revoked, expired or
// garbage-collected token succeeds. A string that is not a token of this
// service, or a token of another instance, is a *ParamError. The revocation
// is durable when Revoke returns. The record is nil if none was found.
func (s *Service) Revoke(ctx context.Context, instanceID, tok string) (*Record, error) {
	if !s.Serves(instanceID) {
		return nil, ErrInstanceNotServed
	}
	c, err := s.keys.Open(tok)
	if err != nil {
		return nil, paramErrorf("Token", "is not a token issued by this service (%v)", err)
	}
	rec, err := s.store.Get(ctx, c.ID)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("revoke token: %w", s.storeFailed("revoke", err))
	case rec.InstanceID != instanceID:
		return nil, paramErrorf("Token", "belongs to another instance")
	case rec.Revoked:
		return rec, nil
	}
	rec, err = s.store.Revoke(ctx, c.ID, ms(s.now()))
	if errors.Is(err, ErrNotFound) {
		return nil, nil // collected in between
	}
	if err != nil {
		return nil, fmt.Errorf("revoke token: %w", s.storeFailed("revoke", err))
	}
	s.revocations.Add(1)
	s.revoked.notify()
	s.log.Info("token revoked", "token_id", rec.ID.String(), "instance", instanceID)
	return rec, nil
}

// Inspect returns the record of a token string whatever its state
// (expired and revoked included), for explanations; ErrMalformed, ErrForged
// or ErrNotFound if there is none, ErrNotFound also for another instance's.
func (s *Service) Inspect(ctx context.Context, instanceID, tok string) (*Record, error) {
	if !s.Serves(instanceID) {
		return nil, ErrInstanceNotServed
	}
	c, err := s.keys.Open(tok)
	if err != nil {
		return nil, err
	}
	return s.Get(ctx, instanceID, c.ID)
}

// Get returns a token's record by ID, whatever its state, or ErrNotFound
// (also for a token of another instance).
func (s *Service) Get(ctx context.Context, instanceID string, id ID) (*Record, error) {
	if !s.Serves(instanceID) {
		return nil, ErrInstanceNotServed
	}
	rec, err := s.store.Get(ctx, id)
	if err != nil {
		return nil, s.storeFailed("get", err)
	}
	if rec.InstanceID != instanceID {
		return nil, ErrNotFound
	}
	return rec, nil
}

// Reveal rebuilds the token string of a record, for an administrator.
func (s *Service) Reveal(rec *Record) (string, error) { return s.keys.Reveal(rec) }

// List returns one page of an instance's token records, oldest first, and
// the cursor of the next page ("" on the last page). pageSize is 1 to
// MaxPageSize; cursor is "" or a cursor List returned.
func (s *Service) List(ctx context.Context, instanceID string, pageSize int, cursor string) ([]*Record, string, error) {
	if !s.Serves(instanceID) {
		return nil, "", ErrInstanceNotServed
	}
	if pageSize < 1 || pageSize > MaxPageSize {
		return nil, "", paramErrorf("PageSize", "%d is out of range; use 1 to %d", pageSize, MaxPageSize)
	}
	var after *ListPosition
	if cursor != "" {
		p, err := parseCursor(cursor)
		if err != nil {
			return nil, "", err
		}
		after = &p
	}
	recs, err := s.store.List(ctx, instanceID, after, pageSize+1)
	if err != nil {
		return nil, "", fmt.Errorf("list tokens: %w", s.storeFailed("list", err))
	}
	next := ""
	if len(recs) > pageSize {
		recs = recs[:pageSize]
		last := recs[len(recs)-1]
		next = formatCursor(ListPosition{CreateTime: last.CreateTime, ID: last.ID})
	}
	return recs, next, nil
}

// Collect deletes records that expired or were revoked more than the grace
// period ago.
func (s *Service) Collect(ctx context.Context) (int, error) {
	return s.store.Collect(ctx, s.now().Add(-s.gcGrace))
}

const cursorLen = 8 + IDLen

func formatCursor(p ListPosition) string {
	var b [cursorLen]byte
	binary.BigEndian.PutUint64(b[:8], uint64(p.CreateTime.UnixMilli()))
	copy(b[8:], p.ID[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func parseCursor(s string) (ListPosition, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != cursorLen {
		return ListPosition{}, paramErrorf("NextToken", "is not a NextToken returned by ListTokens")
	}
	p := ListPosition{CreateTime: time.UnixMilli(int64(binary.BigEndian.Uint64(b[:8])))}
	copy(p.ID[:], b[8:])
	return p, nil
}

// NormalizeResources validates the topic filters of a token (1 to
// MaxResources, each a valid MQTT topic filter) and returns them sorted and
// de-duplicated. The error is a *ParamError for "Resources" that says which
// one is wrong and why.
func NormalizeResources(rs []string) ([]string, error) {
	switch {
	case len(rs) == 0:
		return nil, paramErrorf("Resources", "no topic filter given; give 1 to %d, comma-separated", MaxResources)
	case len(rs) > MaxResources:
		return nil, paramErrorf("Resources", "%d topic filters given; at most %d are allowed", len(rs), MaxResources)
	}
	for i, r := range rs {
		if err := acl.ValidateFilter(r); err != nil {
			return nil, paramErrorf("Resources", "topic filter %d (%s) %v", i+1, quoteShort(r), err)
		}
	}
	out := slices.Clone(rs)
	slices.Sort(out)
	return slices.Compact(out), nil
}

func validateName(n string) error {
	if !utf8.ValidString(n) {
		return paramErrorf("Name", "is not valid UTF-8")
	}
	if c := utf8.RuneCountInString(n); c > MaxNameLength {
		return paramErrorf("Name", "is %d characters; at most %d are allowed", c, MaxNameLength)
	}
	for _, r := range n {
		if unicode.IsControl(r) {
			return paramErrorf("Name", "contains the control character %U", r)
		}
	}
	return nil
}

// quoteShort quotes s for an error message, cut to a readable length.
func quoteShort(s string) string {
	const max = 64
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return fmt.Sprintf("%q… (%d bytes)", s[:cut], len(s))
	}
	return fmt.Sprintf("%q", s)
}
