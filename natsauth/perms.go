package natsauth

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tokenmq/tokenmq/acl"
)

// Permissions are a NATS user's publish and subscribe permissions, in
// NATS subjects, for an MQTT client holding a token's rights (SPEC §6.2).
type Permissions struct {
	PubAllow, PubDeny []string
	SubAllow, SubDeny []string
	// LeftOut says which rights, or which parts of them, NATS could not be
	// given without allowing more than tokenmq does, and why. The user gets
	// less than the token grants, never more.
	LeftOut []string
}

// BuiltinDollarLevels are the '$' first levels every user is kept out of
// where a resource starting with a wildcard would let NATS in: NATS's own
// subject spaces and MQTT's shared-subscription prefixes. The levels that
// issued tokens name are added to them (Translate's dollar argument).
var BuiltinDollarLevels = []string{"$SYS", "$JS", "$JSC", "$KV", "$O", "$OBJ", "$MQTT", "$NRG", "$SRV", "$G", "$LDS", "$share", "$queue"}

// nothing is a subject no MQTT topic or filter converts to (a token with a
// lone '/' and other characters): the allow list of a side the token has no
// right to. An empty allow list would mean "everything" to NATS.
const nothing = "tokenmq/nothing"

// Internal subjects of nats-server's MQTT sessions: a subscribe deny that
// matches one of them breaks QoS 1 and 2 for the client, so none may.
var internalSubjects = [][]string{
	{"$MQTT", "sub", "x"},               // mqttSubPrefix + nuid
	{"$MQTT", "deliver", "pubrel", "x"}, // mqttPubRelDeliverySubjectPrefix + hash
}

// Translate gives the NATS permissions of a connection whose token rights
// are read (subscribe and receive) and write (publish) resources, already
// expanded for its client ID. dollar are '$' first levels to keep wildcard
// resources out of, besides BuiltinDollarLevels.
//
// NATS checks a publish by matching and so does tokenmq: allowing each W
// resource's subjects is exact, but for the '$' topics a leading '+' or '#'
// must not reach (MQTT keeps them out; NATS cannot say "a level starting
// with $"), which are denied level by level. NATS checks a SUBSCRIBE by
// matching too, not by containment, and only its deny list filters what a
// subscription then receives: an allow ending in '*' lets a filter ending
// in '#' ride it (allow a.* admits a.>). Where such a rider is possible the
// deeper levels are denied, so that it receives only what the resources
// cover; where the deny would take away something the resources grant, or
// would break NATS's own MQTT subjects, the rider's way in is left out
// instead (LeftOut).
func Translate(read, write, dollar []string) Permissions {
	var p Permissions
	levels := dollarLevels(dollar)
	w := p.usable(write, "W")
	r := p.usable(read, "R")

	p.PubAllow = allowPatterns(w)
	wACL, _ := acl.Compile(w)
	for _, cand := range dollarDenies(w, levels) {
		if p.mayDeny(cand, w, wACL, "W") {
			p.PubDeny = append(p.PubDeny, denyPatterns(cand)...)
		}
	}
	if len(p.PubAllow) == 0 {
		p.PubAllow, p.PubDeny = []string{nothing}, nil
	}

	rACL, _ := acl.Compile(r)
	allow := allowItems(r)
	for _, cand := range dollarDenies(r, levels) {
		if !p.mayDeny(cand, r, rACL, "R") {
			continue
		}
		for _, d := range denyPatterns(cand) {
			if collidesInternal(d) {
				continue // starts with "$MQTT.": nats-server refuses such MQTT filters itself
			}
			p.SubDeny = append(p.SubDeny, d)
		}
	}
	for i := range allow {
		it := &allow[i]
		y, ok := riderPrefix(it.filter)
		if !ok || !riderPossible(y, allow) {
			continue
		}
		below := func(tail ...string) string { return strings.Join(append(slices.Clone(y), tail...), "/") }
		if !p.mayDeny(below("+", "+", "#"), r, rACL, "R") {
			continue
		}
		d := Subject1(below("+", "#")) // Y.*.> : two or more levels below Y
		if collidesInternal(d) {
			it.dropped = true
			p.LeftOut = append(p.LeftOut, fmt.Sprintf("R %s: NATS would let a subscription to %s ride it, and the deny that stops it would break NATS's MQTT sessions",
				it.filter, below("#")))
			continue
		}
		p.SubDeny = append(p.SubDeny, d)
	}
	for _, it := range allow {
		if !it.dropped {
			p.SubAllow = append(p.SubAllow, it.subject)
		}
	}
	if rACL.Covers("/#") {
		// nats-server also checks the parent level of "/#", the subject "/"
		// of the topic "", which does not exist: allowing it reaches nothing.
		p.SubAllow = append(p.SubAllow, "/")
	}
	if len(p.SubAllow) == 0 {
		p.SubAllow, p.SubDeny = []string{nothing}, nil
	}
	p.PubAllow, p.PubDeny = dedupe(p.PubAllow), dedupe(p.PubDeny)
	p.SubAllow, p.SubDeny = dedupe(p.SubAllow), dedupe(p.SubDeny)
	return p
}

// usable returns the resources NATS can carry as they are: a level that is
// exactly '*' or '>' is a literal to MQTT and a wildcard to NATS, and
// whitespace cannot be converted.
func (p *Permissions) usable(resources []string, side string) []string {
	var out []string
	for _, f := range resources {
		if acl.ValidateFilter(f) != nil {
			p.LeftOut = append(p.LeftOut, fmt.Sprintf("%s %s: not a valid filter", side, f))
			continue
		}
		if _, err := Subject(f, true); err != nil {
			p.LeftOut = append(p.LeftOut, fmt.Sprintf("%s %s: %v", side, f, err))
			continue
		}
		if slices.ContainsFunc(strings.Split(f, "/"), func(l string) bool { return l == "*" || l == ">" }) {
			p.LeftOut = append(p.LeftOut, fmt.Sprintf("%s %s: a level '*' or '>' is a wildcard to NATS", side, f))
			continue
		}
		out = append(out, f)
	}
	return out
}

// allowItem is one subscribe-allow subject and the MQTT filter it is the
// form of (a resource, or the parent level of one ending in '#').
type allowItem struct {
	filter  string
	subject string
	dropped bool
}

// allowItems are the subscribe allows of resources fs: each resource's
// subject and, for one ending in "/#", its parent's (nats-server subscribes
// an MQTT filter P/# as P.> and P, and checks both).
func allowItems(fs []string) []allowItem {
	var out []allowItem
	for _, f := range fs {
		out = append(out, allowItem{filter: f, subject: Subject1(f)})
		if parent, ok := strings.CutSuffix(f, "/#"); ok {
			out = append(out, allowItem{filter: parent, subject: levelUp(f)})
		}
	}
	return out
}

func allowPatterns(fs []string) []string {
	var out []string
	for _, it := range allowItems(fs) {
		out = append(out, it.subject)
	}
	return out
}

// denyPatterns are the NATS subjects that together match the topics of an
// MQTT filter: P/# is P and P.>.
func denyPatterns(f string) []string {
	if strings.HasSuffix(f, "/#") {
		return []string{levelUp(f), Subject1(f)}
	}
	return []string{Subject1(f)}
}

// levelUp is the parent-level subject nats-server subscribes besides P.>
// for an MQTT filter P/#: P's subject ("/" for an empty P).
func levelUp(f string) string { return strings.TrimSuffix(Subject1(f), ".>") }

// Subject1 is Subject for a filter already known to convert.
func Subject1(f string) string {
	s, err := Subject(f, true)
	if err != nil {
		panic("natsauth: " + err.Error())
	}
	return s
}

// dollarDenies are, for each resource starting with a wildcard, the same
// resource under each '$' level: the topics NATS would let it reach and
// MQTT does not.
func dollarDenies(fs []string, levels []string) []string {
	var out []string
	for _, f := range fs {
		first, _, _ := strings.Cut(f, "/")
		if first != "+" && first != "#" {
			continue
		}
		for _, l := range levels {
			switch {
			case first == "#":
				out = append(out, l+"/#")
			default:
				out = append(out, l+f[len(first):])
			}
		}
	}
	return out
}

// mayDeny decides a candidate deny (an MQTT filter whose NATS subjects
// would be denied): yes if the resources grant none of the topics the deny
// would reach (NATS semantics: a leading wildcard reaches '$' topics too);
// no if they grant every topic of it, MQTT semantics (the reach it would
// stop is granted anyway; what a leading wildcard would reach of '$'
// topics, the '$' denies stop); and if they grant some, yes, recording
// what is lost.
func (p *Permissions) mayDeny(cand string, resources []string, compiled *acl.ACL, side string) bool {
	c := strings.Split(cand, "/")
	var hit []string
	for _, f := range resources {
		if intersects(c, strings.Split(f, "/"), false, true) {
			hit = append(hit, f)
		}
	}
	if len(hit) == 0 {
		return true
	}
	if compiled.Covers(cand) {
		return false
	}
	p.LeftOut = append(p.LeftOut, fmt.Sprintf("%s %s: the topics of %s are denied (NATS cannot deny the rest without them)", side, strings.Join(hit, ","), cand))
	return true
}

// riderPrefix reports whether an allow ends in '*' (its filter in '+'),
// and the levels before it.
func riderPrefix(f string) ([]string, bool) {
	levels := strings.Split(f, "/")
	if levels[len(levels)-1] != "+" {
		return nil, false
	}
	return levels[:len(levels)-1], true
}

// riderPossible reports whether a subscription to Y'/# (Y' an instance of
// y) could pass: nats-server also checks its parent level Y', which some
// allow must match. With y empty the filter is '#' alone, checked alone.
func riderPossible(y []string, allow []allowItem) bool {
	if len(y) == 0 {
		return true
	}
	for _, it := range allow {
		if !it.dropped && intersects(y, strings.Split(it.filter, "/"), false, false) {
			return true
		}
	}
	return false
}

func collidesInternal(d string) bool {
	p := strings.Split(d, ".")
	for _, s := range internalSubjects {
		if natsMatch(p, s) {
			return true
		}
	}
	return false
}

// intersects reports whether some topic matches both filters (MQTT level
// lists). With aMQTT (bMQTT) a filter follows MQTT's rule that a leading
// wildcard does not match a topic starting with '$'; without it, NATS's
// matching, which knows no such rule.
func intersects(a, b []string, aMQTT, bMQTT bool) bool {
	for i := 0; ; i++ {
		aHash, bHash := i < len(a) && a[i] == "#", i < len(b) && b[i] == "#"
		if aHash || bHash {
			if i == 1 && !(aHash && bHash) && (len(a) == 1 || len(b) == 1) && (a[0] == "" || b[0] == "") {
				return false // '#' as its parent level here is the topic "", which is no topic
			}
			if i > 0 {
				return true // the rest of the other filter is some topic's rest
			}
			other, hashMQTT := b, aMQTT
			if bHash {
				other, hashMQTT = a, bMQTT
			}
			if aHash && bHash {
				return true
			}
			// A leading '#' against the other's first level.
			return !(hashMQTT && isDollar(other[0]))
		}
		if i == len(a) || i == len(b) {
			return i == len(a) && i == len(b)
		}
		x, y := a[i], b[i]
		switch {
		case x == "+" && y == "+":
		case x == "+":
			if i == 0 && aMQTT && isDollar(y) {
				return false
			}
		case y == "+":
			if i == 0 && bMQTT && isDollar(x) {
				return false
			}
		case x != y:
			return false
		}
	}
}

func isDollar(level string) bool { return level != "" && level[0] == '$' }

// dollarLevels are the built-in '$' levels and those given, valid as the
// first level of a topic, sorted and de-duplicated.
func dollarLevels(extra []string) []string {
	out := slices.Clone(BuiltinDollarLevels)
	for _, l := range extra {
		if isDollar(l) && !strings.ContainsAny(l, "/+#") {
			if _, err := Subject(l, false); err == nil {
				out = append(out, l)
			}
		}
	}
	return dedupe(out)
}

func dedupe(s []string) []string {
	if len(s) == 0 {
		return s
	}
	slices.Sort(s)
	return slices.Compact(s)
}
