package acl

import (
	"fmt"
	"strings"
)

// Decision explains an ACL's answer for one topic or filter.
type Decision struct {
	Allowed bool
	// Resource is the filter that decides: the one that matches (or, for a
	// subscription, contains) it when allowed; the closest one when denied.
	// Empty when several filters together cover a subscription, or when
	// none comes close.
	Resource string
	// Level is, when denied, the 1-based level at which the closest filter
	// stops matching (0 if none).
	Level int
	// Reason says it in words.
	Reason string
}

// ExplainPublish explains Match(topic).
func (a *ACL) ExplainPublish(topic string) Decision {
	if err := ValidateTopic(topic); err != nil {
		return Decision{Reason: "the topic name " + err.Error()}
	}
	for _, r := range a.Filters() {
		if Match(r, topic) {
			return Decision{Allowed: true, Resource: r, Reason: fmt.Sprintf("resource %q matches %q", r, topic)}
		}
	}
	return a.closest(topic, false)
}

// ExplainSubscribe explains Covers(filter) (a "$share/<group>/" prefix is
// removed first, as the broker does).
func (a *ACL) ExplainSubscribe(filter string) Decision {
	if _, inner, shared := SharedFilter(filter); shared {
		filter = inner
	}
	if err := ValidateFilter(filter); err != nil {
		return Decision{Reason: "the topic filter " + err.Error()}
	}
	for _, r := range a.Filters() {
		if one, err := Compile([]string{r}); err == nil && one.Covers(filter) {
			return Decision{Allowed: true, Resource: r, Reason: fmt.Sprintf("resource %q contains every topic %q can match", r, filter)}
		}
	}
	if a.Covers(filter) {
		return Decision{Allowed: true, Reason: fmt.Sprintf("the resources together (%s) contain every topic %q can match", strings.Join(a.Filters(), ", "), filter)}
	}
	return a.closest(filter, true)
}

// closest finds the resource that agrees with t for the most levels.
func (a *ACL) closest(t string, subscribe bool) Decision {
	best, bestLevel := "", 0
	tl := strings.Split(t, "/")
	for _, r := range a.Filters() {
		n := agreeingLevels(strings.Split(r, "/"), tl, subscribe)
		if n > bestLevel {
			best, bestLevel = r, n
		}
	}
	if best == "" {
		if len(a.Filters()) == 0 {
			return Decision{Reason: "the token has no resources for this action"}
		}
		if strings.HasPrefix(t, "$") {
			return Decision{Reason: fmt.Sprintf("no resource matches %q (a '+' or '#' at the start never matches a '$' topic)", t)}
		}
		return Decision{Level: 1, Reason: fmt.Sprintf("no resource matches %q at level 1", t)}
	}
	verb := "match"
	if subscribe {
		verb = "contain"
	}
	level := bestLevel + 1
	var what string
	switch {
	case level > len(tl):
		what = fmt.Sprintf("%q has fewer levels than %q", t, best)
	case subscribe && (tl[level-1] == "#" || tl[level-1] == "+"):
		what = fmt.Sprintf("level %d of %q is %q, wider than %q's", level, t, tl[level-1], best)
	default:
		what = fmt.Sprintf("level %d (%q) differs", level, tl[level-1])
	}
	return Decision{Resource: best, Level: level, Reason: fmt.Sprintf("the closest resource %q does not %s %q: %s", best, verb, t, what)}
}

// agreeingLevels counts the leading levels of t that resource r admits.
func agreeingLevels(r, t []string, subscribe bool) int {
	if strings.HasPrefix(t[0], "$") && (r[0] == "+" || r[0] == "#") {
		return 0 // [MQTT-4.7.2-1]
	}
	for i := range t {
		if i >= len(r) {
			return i
		}
		switch {
		case r[i] == "#":
			return len(t)
		case r[i] == "+" && (!subscribe || t[i] != "#"):
		case r[i] == t[i]:
		default:
			return i
		}
	}
	return len(t)
}
