package api

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/tokenmq/tokenmq/internal/deadline"
	"github.com/tokenmq/tokenmq/token"
)

// APIVersion is the only Version the Alibaba envelope accepts.
const APIVersion = "2020-04-20"

// timestampLayout is the Timestamp format of the RPC signature.
const timestampLayout = "2006-01-02T15:04:05Z"

// parseTimestamp reads a Timestamp in exactly timestampLayout, as
// time.Parse does (FuzzParseTimestamp) but without its general layout
// machinery (2 % of a QueryToken's CPU). Go's parser also takes fractional
// seconds the layout lacks; this does not.
func parseTimestamp(s string) (time.Time, bool) {
	if len(s) != len(timestampLayout) || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != 'Z' {
		return time.Time{}, false
	}
	ok := true
	num := func(i, n int) int {
		v := 0
		for _, c := range []byte(s[i : i+n]) {
			if c < '0' || c > '9' {
				ok = false
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	year, month, day := num(0, 4), num(5, 2), num(8, 2)
	hour, minute, sec := num(11, 2), num(14, 2), num(17, 2)
	if !ok || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	if t := time.Date(year, time.Month(month), day, hour, minute, sec, 0, time.UTC); t.Day() == day {
		return t, true // (a day past its month's end would have rolled over)
	}
	return time.Time{}, false
}

// Config configures a Handler.
type Config struct {
	// Service is the token service the actions call. Required.
	Service *token.Service
	// Keys are the access keys callers sign with. Required.
	Keys *Keys
	// TimestampWindow is how far a request's Timestamp may be from now. Default 15m.
	TimestampWindow time.Duration
	// NonceCapacity bounds the replay cache per access key, in nonces. Default 1,000,000.
	NonceCapacity int
	// MaxBodyBytes bounds a request body. Default 1 MiB.
	MaxBodyBytes int64
	// RateLimits are per-key limits; zero fields are unlimited.
	RateLimits RateLimits
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives request logs (never parameters or secrets).
	Logger *slog.Logger
	// SharedNonces, if set, remembers SignatureNonces for every replica
	// sharing it (instead of this process's memory).
	SharedNonces NonceStore
	// SharedRates, if set, counts calls for the rate limits across replicas.
	SharedRates RateStore
	// Observer is told of every request, for metrics. Default: none.
	Observer Observer
}

// Observer is told of every API request: the action (a known one, or
// "unknown"), the response code ("OK", or the error Code with any
// parameter name cut off) and the handling time.
type Observer interface {
	APIRequest(action, code string, d time.Duration)
}

type nopObserver struct{}

func (nopObserver) APIRequest(string, string, time.Duration) {}

// NonceStore remembers SignatureNonces across token-service replicas.
type NonceStore interface {
	// UseNonce records a nonce's hash until expires; false if it was recorded already.
	UseNonce(ctx context.Context, hash [32]byte, expires time.Time) (bool, error)
}

// RateStore counts calls across token-service replicas.
type RateStore interface {
	// CountCall adds a call of key to the one-second window starting at
	// window and returns the window's count.
	CountCall(ctx context.Context, key string, window time.Time) (int64, error)
}

// Handler serves the RPC endpoint ("/"). It is safe for concurrent use.
type Handler struct {
	observer Observer
	shared   NonceStore
	svc      *token.Service
	keys     *Keys
	window   time.Duration
	maxBody  int64
	nonces   *nonceCache
	limiters *limiters
	now      func() time.Time
	log      *slog.Logger
}

// NewHandler returns a Handler; it does no I/O.
func NewHandler(cfg Config) (*Handler, error) {
	if cfg.Service == nil || cfg.Keys == nil {
		return nil, fmt.Errorf("api: Service and Keys are required")
	}
	h := &Handler{
		svc: cfg.Service, keys: cfg.Keys, window: cfg.TimestampWindow, maxBody: cfg.MaxBodyBytes,
		limiters: newLimiters(cfg.RateLimits, cfg.SharedRates), now: cfg.Now, log: cfg.Logger, shared: cfg.SharedNonces,
		observer: cfg.Observer,
	}
	if h.observer == nil {
		h.observer = nopObserver{}
	}
	if h.window <= 0 {
		h.window = 15 * time.Minute
	}
	if h.maxBody <= 0 {
		h.maxBody = 1 << 20
	}
	if cfg.NonceCapacity <= 0 {
		cfg.NonceCapacity = 1_000_000
	}
	h.nonces = newNonceCache(h.window, cfg.NonceCapacity)
	if h.now == nil {
		h.now = time.Now
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	return h, nil
}

// newRequestID returns a random UUID (version 4) in upper case, as Alibaba
// Cloud's RequestIds look. It identifies a request in logs; it is not a
// secret, so the runtime's fast generator serves.
func newRequestID() string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	const hexDigits = "0123456789ABCDEF"
	var out [36]byte
	j := 0
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out[j] = '-'
			j++
		}
		out[j], out[j+1] = hexDigits[c>>4], hexDigits[c&15]
		j += 2
	}
	return string(out[:])
}

// call is one authenticated request on its way through an action.
type call struct {
	ps        params
	key       *key
	requestID string
}

// action describes one RPC action.
type action struct {
	adminOnly bool
	class     rateClass
	overflow  string        // Code when the rate limit is hit
	timeout   time.Duration // bounds the action; default defaultActionTimeout
	run       func(h *Handler, ctx context.Context, c *call) (any, *Error)
}

// defaultActionTimeout bounds an action's work.
const defaultActionTimeout = 10 * time.Second

// actions are the Alibaba-envelope actions by name.
var actions = map[string]action{
	"ApplyToken":  {adminOnly: true, class: classApply, overflow: CodeApplyTokenOverFlow, run: (*Handler).applyToken},
	"QueryToken":  {adminOnly: false, class: classQuery, overflow: CodeQueryTokenOverFlow, run: (*Handler).queryToken},
	"RevokeToken": {adminOnly: true, class: classOther, overflow: CodeSystemOverFlow, run: (*Handler).revokeToken},
	"ListTokens":  {adminOnly: true, class: classOther, overflow: CodeSystemOverFlow, run: (*Handler).listTokens},
	// ExplainAccess says whether a token may publish or subscribe to a topic, and why.
	"ExplainAccess": {adminOnly: true, class: classOther, overflow: CodeSystemOverFlow, run: (*Handler).explainAccess},
	// ListClients and KickClient are the clients admin (SPEC §2.2);
	// brokers in other processes report their connections with ReportClients.
	"ListClients":   {adminOnly: true, class: classOther, overflow: CodeSystemOverFlow, run: (*Handler).listClients},
	"KickClient":    {adminOnly: true, class: classOther, overflow: CodeSystemOverFlow, run: (*Handler).kickClient},
	"ReportClients": {adminOnly: false, class: classQuery, overflow: CodeSystemOverFlow, run: (*Handler).reportClients},
	// ListRevocations is tokenmq's revocation feed for brokers (long poll).
	"ListRevocations": {adminOnly: false, class: classQuery, overflow: CodeSystemOverFlow,
		timeout: MaxFeedWait + 5*time.Second, run: (*Handler).listRevocations},
}

// ucloudAction is the one action of the UCloud envelope.
const ucloudAction = "GetURocketMQToken"

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	requestID := newRequestID()
	defer recoverPanic(h.log, w, func() { h.writeError(w, r, requestID, "", errInternal) })
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		h.writeError(w, r, requestID, "", newError(CodeUnsupportedMethod,
			"The HTTP method %s is not supported; use GET or POST.", r.Method))
		return
	}
	ps, perr := parseRequestParams(r, h.maxBody)
	if perr != nil {
		h.writeError(w, r, requestID, "", perr)
		h.observer.APIRequest("unknown", metricCode(perr), time.Since(start))
		return
	}
	name := ps.value("Action")
	if name == ucloudAction {
		code := h.serveUCloud(w, r, ps)
		h.observer.APIRequest(ucloudAction, code, time.Since(start))
		return
	}
	resp, aerr := h.serveRPC(r, ps, name, requestID)
	if aerr != nil {
		h.writeError(w, r, requestID, name, aerr)
	} else {
		writeJSON(w, http.StatusOK, resp)
	}
	took := time.Since(start)
	label := name
	if _, known := actions[name]; !known {
		label = "unknown" // never a label value the caller chooses
	}
	h.observer.APIRequest(label, metricCode(aerr), took)
	h.log.Debug("api request", "action", label, "code", codeOf(aerr), "duration", took)
}

// metricCode is the Code without the parameter part of
// InvalidParameter.<Name> and MissingParameter.<Name>, whose names callers choose.
func metricCode(e *Error) string {
	if e == nil {
		return "OK"
	}
	for _, p := range []string{CodeInvalidParameter, CodeMissingParameter} {
		if strings.HasPrefix(e.Code, p) {
			return p
		}
	}
	return e.Code
}

func codeOf(e *Error) string {
	if e == nil {
		return "OK"
	}
	return e.Code
}

// serveRPC authenticates, authorizes and runs an Alibaba-envelope action.
func (h *Handler) serveRPC(r *http.Request, ps params, name, requestID string) (any, *Error) {
	if _, ok := ps.get("Action"); !ok {
		return nil, errMissingSignatureParam("Action")
	}
	act, ok := actions[name]
	if !ok {
		return nil, newError(CodeAPINotSupported, "The specified API %q is not supported.", clip(name, 64))
	}
	key, err := h.authenticate(r.Context(), r.Method, ps)
	if err != nil {
		return nil, err
	}
	if act.adminOnly && key.Role != RoleAdmin {
		return nil, newError(CodePermission,
			"An error occurred while validating the resource permissions: access key %q of role %s may not call %s.", key.ID, key.Role, name)
	}
	switch allowed, err := h.limiters.allow(r.Context(), &key.AccessKey, act.class, h.now()); {
	case err != nil:
		h.log.Error("shared rate limit unavailable", "err", err)
		return nil, errInternal
	case !allowed:
		return nil, newError(act.overflow,
			"You have called %s too many times. Please try again later.", name)
	}
	timeout := act.timeout
	if timeout == 0 {
		timeout = defaultActionTimeout
	}
	ctx := deadline.WithTimeout(r.Context(), timeout) // no timer unless the store waits on it
	defer ctx.Release()
	return act.run(h, ctx, &call{ps: ps, key: key, requestID: requestID})
}

// authenticate checks the common parameters and the signature of an
// Alibaba-envelope request and returns the caller's key.
func (h *Handler) authenticate(ctx context.Context, method string, ps params) (*key, *Error) {
	for _, n := range []string{"AccessKeyId", "Signature", "SignatureMethod", "SignatureVersion", "SignatureNonce", "Timestamp"} {
		if ps.value(n) == "" {
			return nil, errMissingSignatureParam(n)
		}
	}
	sigMethod := ps.value("SignatureMethod")
	if sigMethod != SignatureHMACSHA1 && sigMethod != SignatureHMACSHA256 {
		return nil, errInvalidParam("SignatureMethod", "%q is not supported; use HMAC-SHA1 or HMAC-SHA256.", clip(sigMethod, 32))
	}
	if v := ps.value("SignatureVersion"); v != "1.0" {
		return nil, errInvalidParam("SignatureVersion", "%q is not supported; use 1.0.", clip(v, 32))
	}
	if v, ok := ps.get("Version"); ok && v != APIVersion {
		return nil, newError(CodeInvalidVersion, "Specified parameter Version %q is not valid; use %s.", clip(v, 32), APIVersion)
	}
	if v, ok := ps.get("Format"); ok && !strings.EqualFold(v, "JSON") {
		return nil, errInvalidParam("Format", "%q is not supported; use JSON.", clip(v, 32))
	}
	ts, ok := parseTimestamp(ps.value("Timestamp"))
	if !ok {
		return nil, newError(CodeTimestampFormat,
			"Specified timestamp %q is not in the format YYYY-MM-DDThh:mm:ssZ (UTC).", clip(ps.value("Timestamp"), 40))
	}
	now := h.now()
	if d := now.Sub(ts); d > h.window || d < -h.window {
		return nil, newError(CodeTimestampExpired,
			"Specified time stamp %s is more than %s away from the server time %s.", ts.Format(timestampLayout), h.window, now.UTC().Format(timestampLayout))
	}
	key := h.keys.lookup(ps.value("AccessKeyId"))
	if key == nil {
		return nil, newError(CodeAccessKeyNotFound, "Specified access key is not found.")
	}
	if ok, sts := verifySignature(method, sigMethod, key, ps, ps.value("Signature")); !ok {
		return nil, newError(CodeSignatureDoesNotMatch,
			"Specified signature is not matched with our calculation. server string to sign is:%s", sts)
	}
	switch h.useNonce(ctx, key.ID, ps.value("SignatureNonce"), now) {
	case nonceError:
		return nil, errInternal
	case nonceUsed:
		return nil, newError(CodeNonceUsed, "Specified signature nonce was used already.")
	case nonceFull:
		h.log.Warn("replay cache full; refusing requests until it drains")
		return nil, newError(CodeSystemOverFlow,
			"The server is handling too many requests. Please try again later.")
	}
	return key, nil
}

// useNonce records a SignatureNonce in the shared store if there is one,
// else in memory.
func (h *Handler) useNonce(ctx context.Context, keyID, nonce string, now time.Time) nonceResult {
	if h.shared == nil {
		return h.nonces.add(keyID, nonce, now)
	}
	hash := sha256.Sum256([]byte(keyID + "\x00" + nonce))
	fresh, err := h.shared.UseNonce(ctx, hash, now.Add(2*h.window))
	switch {
	case err != nil:
		h.log.Error("shared nonce store unavailable", "err", err)
		return nonceError
	case !fresh:
		return nonceUsed
	}
	return nonceFresh
}

// instance reads InstanceId and checks that the key may use it and the
// service serves it.
func (h *Handler) instance(c *call) (string, *Error) {
	in := c.ps.value("InstanceId")
	if in == "" {
		return "", errMissingParam("InstanceId")
	}
	if !c.key.allowsInstance(in) || !h.svc.Serves(in) {
		return "", errInstancePermission(clip(in, 64))
	}
	return in, nil
}

// instanceAnd reads InstanceId (checked as by instance) and the values of
// the other required parameters, or the error for the first one missing.
func (h *Handler) instanceAnd(c *call, names ...string) (string, []string, *Error) {
	inst, e := h.instance(c)
	if e != nil {
		return "", nil, e
	}
	out := make([]string, len(names))
	for i, n := range names {
		if out[i] = c.ps.value(n); out[i] == "" {
			return "", nil, errMissingParam(n)
		}
	}
	return inst, out, nil
}

func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, requestID, action string, e *Error) {
	if e.Status >= 500 {
		h.log.Warn("api request failed", "action", clip(action, 64), "code", e.Code)
	}
	writeJSON(w, e.Status, errorBody{RequestId: requestID, HostId: r.Host, Code: e.Code, Message: e.Message})
}

// recoverPanic turns a panic in a request handler into an error log line
// (with the stack) and a 500 (SPEC §5), instead of net/http's debug-level
// log and a dropped connection. answer writes the 500.
func recoverPanic(log *slog.Logger, w http.ResponseWriter, answer func()) {
	p := recover()
	if p == nil {
		return
	}
	if p == http.ErrAbortHandler {
		panic(p)
	}
	log.Error("api request handler panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	answer()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var b []byte
	var err error
	if a, ok := v.(jsonAppender); ok {
		b = a.appendJSON(make([]byte, 0, 256))
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"Code":"InternalError","Message":"response encoding failed"}`)
	}
	h := w.Header()
	h["Content-Type"] = contentTypeJSON
	h["Content-Length"] = []string{strconv.Itoa(len(b))} // never chunked, whatever its size
	w.WriteHeader(status)
	w.Write(b)
}

var contentTypeJSON = []string{"application/json;charset=utf-8"}
