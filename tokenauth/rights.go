package tokenauth

import (
	"strings"

	"github.com/tokenmq/tokenmq/acl"
	"github.com/tokenmq/tokenmq/token"
)

// Rights are what a connection may do now (SPEC §3.2): compiled ACLs for
// subscribe and receive (read) and for publish (write). Rights are replaced
// whole, never mutated, so the hot path reads them without a lock. The nil
// *Rights, like NoRights, allows nothing.
type Rights struct {
	read, write *acl.ACL
}

// NoRights allows nothing: a connection that is being kicked has these.
var NoRights = &Rights{}

// Held is a valid token a connection relies on, the type (R, W or RW) it
// is given as, and its resources for this connection (${clientid}
// expanded: Grant.ACLFor).
type Held struct {
	Grant *Grant
	Type  token.Actions
	ACL   *acl.ACL // nil: the grant's own
}

// Resources returns the token's resources for this connection.
func (h Held) Resources() []string { return h.acl().Filters() }

func (h Held) acl() *acl.ACL {
	if h.ACL != nil {
		return h.ACL
	}
	return h.Grant.acl
}

// RightsOf unions the resources of the held tokens by type. A single
// token's compiled ACL is shared as it is; several are compiled together.
func RightsOf(hs []Held) *Rights {
	return &Rights{read: unionACL(hs, token.ActionRead), write: unionACL(hs, token.ActionWrite)}
}

func unionACL(hs []Held, typ token.Actions) *acl.ACL {
	var picked []*acl.ACL
	for _, h := range hs {
		if h.Type&typ != 0 {
			picked = append(picked, h.acl())
		}
	}
	switch len(picked) {
	case 0:
		return nil
	case 1:
		return picked[0]
	}
	var filters []string
	for _, a := range picked {
		filters = append(filters, a.Filters()...)
	}
	a, err := acl.Compile(filters)
	if err != nil { // each was compiled before, so this cannot happen; fail closed if it does
		return nil
	}
	return a
}

// Writable reports whether the rights allow publishing to topic name t
// (already validated as a topic name). Clients never publish to $SYS or
// $share topics.
func (r *Rights) Writable(t string) bool {
	if r == nil || t == "" || t[0] == '$' && ReservedTopic(t) {
		return false
	}
	return r.write.Match(t)
}

// Readable judges a subscription filter by containment (a shared one,
// "$share/<group>/F", by F) and a delivered topic name by matching.
func (r *Rights) Readable(f string) bool {
	if r == nil || f == "" {
		return false
	}
	if f[0] == '$' {
		if _, inner, shared := acl.SharedFilter(f); shared {
			return inner != "" && acl.ValidateFilter(inner) == nil && r.read.Covers(inner)
		}
	}
	if strings.IndexByte(f, '+') >= 0 || strings.IndexByte(f, '#') >= 0 { // a filter with wildcards (IndexByte is vectorised; ContainsAny is not)
		return r.read.Covers(f)
	}
	return r.read.Match(f)
}

// ReservedTopic reports a first level of $SYS or $share, in any case (as
// Mochi compares them).
func ReservedTopic(t string) bool {
	first, _, _ := strings.Cut(t, "/")
	return strings.EqualFold(first, "$SYS") || strings.EqualFold(first, "$share")
}

// ExpandResources puts clientID in place of every "${clientid}" level of
// the resources (SPEC §3.7). A client ID that cannot stand as one topic
// level (empty, with '/', '+', '#' or NUL, or starting with '$') gets
// nothing from such a resource: it is dropped. Resources without the
// placeholder are returned as they are.
func ExpandResources(resources []string, clientID string) []string {
	out := make([]string, 0, len(resources))
	usable := expandable(clientID)
	for _, r := range resources {
		if !hasPlaceholder(r) {
			out = append(out, r)
			continue
		}
		if !usable {
			continue
		}
		levels := strings.Split(r, "/")
		for i, l := range levels {
			if l == token.PlaceholderClientID {
				levels[i] = clientID
			}
		}
		if e := strings.Join(levels, "/"); acl.ValidateFilter(e) == nil {
			out = append(out, e)
		}
	}
	return out
}

// hasPlaceholder reports a "${clientid}" level in filter f.
func hasPlaceholder(f string) bool {
	if !strings.Contains(f, token.PlaceholderClientID) {
		return false
	}
	for level := range strings.SplitSeq(f, "/") {
		if level == token.PlaceholderClientID {
			return true
		}
	}
	return false
}

// expandable reports whether a client ID can stand as one topic level.
func expandable(clientID string) bool {
	return clientID != "" && clientID[0] != '$' && !strings.ContainsAny(clientID, "/+#\x00")
}
