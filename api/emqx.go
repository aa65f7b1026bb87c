package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/tokenmq/tokenmq/acl"
	"github.com/tokenmq/tokenmq/token"
	"github.com/tokenmq/tokenmq/tokenauth"
)

// EMQXAuth serves SPEC §2.4: EMQX 5 HTTP authentication (POST /mqtt/auth)
// with tokenmq tokens, so that an EMQX cluster (or any broker with an HTTP
// auth hook) can use them. The answer carries the token's rights as an EMQX
// ACL (new format, EMQX 5.5+) and expire_at.
type EMQXAuth struct {
	lookup     tokenauth.Lookup
	instanceID string
	secret     string
	allowPlain bool
	log        *slog.Logger
}

// NewEMQXAuth returns the webhook for instanceID; callers must present
// "Authorization: Bearer <secret>".
func NewEMQXAuth(svc *token.Service, instanceID, secret string, allowPlain bool, log *slog.Logger) *EMQXAuth {
	return &EMQXAuth{lookup: tokenauth.Direct(svc, instanceID), instanceID: instanceID, secret: secret, allowPlain: allowPlain, log: log}
}

// EMQXRequest is what EMQX's HTTP authenticator is configured to send.
type EMQXRequest struct {
	ClientID string `json:"clientid"`
	Username string `json:"username"`
	Password string `json:"password"`
}

// EMQXRule is one ACL rule of EMQX's new format.
type EMQXRule struct {
	Permission string `json:"permission"` // allow or deny
	Action     string `json:"action"`     // publish, subscribe or all
	Topic      string `json:"topic"`      // a filter, or "eq <filter>" for an exact match
}

// EMQXResponse is EMQX 5's HTTP authentication response.
type EMQXResponse struct {
	Result      string     `json:"result"` // allow or deny
	IsSuperuser bool       `json:"is_superuser"`
	ExpireAt    int64      `json:"expire_at,omitempty"` // Unix seconds
	ACL         []EMQXRule `json:"acl,omitempty"`
}

func (e *EMQXAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer recoverPanic(e.log, w, func() { http.Error(w, `{"message":"internal error"}`, http.StatusInternalServerError) })
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, `{"message":"use POST"}`, http.StatusMethodNotAllowed)
		return
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(e.secret)) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tokenmq"`)
		http.Error(w, `{"message":"bad or missing bearer secret"}`, http.StatusUnauthorized)
		return
	}
	var req EMQXRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil {
		http.Error(w, `{"message":"body must be JSON {clientid, username, password}"}`, http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	resp, err := e.decide(ctx, req)
	if err != nil { // an outage: EMQX treats a non-200 as "ignore", i.e. not authenticated here
		e.log.Warn("emqx auth: token service failed", "err", err)
		http.Error(w, `{"message":"token service unavailable"}`, http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

var emqxDeny = EMQXResponse{Result: "deny"}

// decide applies SPEC §3.1 to the credentials, as the broker does: the
// core authenticates, and the answer translates the tokens' rights.
func (e *EMQXAuth) decide(ctx context.Context, req EMQXRequest) (EMQXResponse, error) {
	creds, err := tokenauth.ParseCredentials([]byte(req.Username), []byte(req.Password), req.Password != "", e.allowPlain)
	if err != nil {
		return emqxDeny, nil
	}
	hs, ref := tokenauth.Authenticate(ctx, e.lookup, e.instanceID, req.ClientID, creds)
	switch {
	case ref != nil && ref.Code == tokenauth.ReasonUnavailable:
		return EMQXResponse{}, ref.Err
	case ref != nil:
		return emqxDeny, nil
	}
	var write, read []string
	for _, h := range hs {
		if h.Type.Covers(token.ActionWrite) {
			write = append(write, h.Resources()...) // ${clientid} expanded for req.ClientID
		}
		if h.Type.Covers(token.ActionRead) {
			read = append(read, h.Resources()...)
		}
	}
	return EMQXResponse{Result: "allow", ExpireAt: tokenauth.Expiry(hs).Unix(), ACL: EMQXACL(write, read)}, nil
}

// EMQXACL translates a token's rights into EMQX ACL rules (first match
// wins). EMQX matches a subscription filter against a rule as if the
// filter were a topic name: a rule "a/+" lets "a/#" through, which
// tokenmq's containment denies. So for a resource ending in "P/+" (or
// "P/+/#"), an exact deny of the filter that would ride it ("eq P/#") comes
// first; where P itself has wildcards the riders cannot be listed, and the
// resource is allowed only as itself ("eq R"). The rules therefore never allow more than tokenmq does. The
// list ends with a deny of everything: EMQX's new ACL format otherwise falls
// through to other authorizers. EMQX's own "#" does not match '$' topics:
// set authorization.no_match = deny in EMQX as well.
func EMQXACL(write, read []string) []EMQXRule {
	write, read = emqxReadable(write), emqxReadable(read)
	var rules []EMQXRule
	for _, f := range dedupe(write) {
		rules = append(rules, EMQXRule{"allow", "publish", f})
	}
	var denies, allows []EMQXRule
	for _, f := range dedupe(read) {
		levels := strings.Split(f, "/")
		last := len(levels) - 1
		if levels[last] == "#" {
			last--
		}
		lastPlus := -1
		for i, l := range levels {
			if l == "+" {
				lastPlus = i
			}
		}
		// A filter can only end in '#', so EMQX lets one "ride" a '+' only at
		// the resource's last level (or just before its final '#').
		switch {
		case lastPlus < 0 || lastPlus != last:
			allows = append(allows, EMQXRule{"allow", "subscribe", f})
		case !slices.Contains(levels[:lastPlus], "+"):
			rider := strings.Join(append(slices.Clone(levels[:lastPlus]), "#"), "/")
			if !coveredBy(read, rider) {
				denies = append(denies, EMQXRule{"deny", "subscribe", "eq " + rider})
			}
			allows = append(allows, EMQXRule{"allow", "subscribe", f})
		default: // riders would be unbounded ("x/#" for every x): only the resource itself
			allows = append(allows, EMQXRule{"allow", "subscribe", "eq " + f})
		}
	}
	rules = append(rules, denies...)
	rules = append(rules, allows...)
	return append(rules, EMQXRule{"deny", "all", "#"})
}

// emqxReadable leaves out the resources EMQX would read as something else:
// a "${…}" placeholder (EMQX fills in its own) or an "eq " prefix (EMQX's
// exact-match marker). Left out, they allow less, never more.
func emqxReadable(fs []string) []string {
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		if !strings.Contains(f, "${") && !strings.HasPrefix(f, "eq ") {
			out = append(out, f)
		}
	}
	return out
}

func dedupe(fs []string) []string {
	out := slices.Clone(fs)
	slices.Sort(out)
	return slices.Compact(out)
}

// coveredBy reports whether tokenmq itself allows subscribing to f.
func coveredBy(resources []string, f string) bool {
	a, err := acl.Compile(resources)
	return err == nil && a.Covers(f)
}
