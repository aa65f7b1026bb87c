package acl

import (
	"strings"
	"testing"
)

// Explain agrees with Match and Covers, and names the deciding resource.
func TestExplainMirrorsACL(t *testing.T) {
	for _, tc := range []struct {
		resources []string
		subscribe bool
		topic     string
		allowed   bool
		resource  string
		reason    string
	}{
		{[]string{"a/+"}, true, "a/b", true, "a/+", "contains"},
		{[]string{"a/+"}, true, "a/+", true, "a/+", "contains"},
		{[]string{"a/+"}, true, "a/#", false, "a/+", `level 2 of "a/#" is "#", wider than "a/+"'s`},
		{[]string{"a/+"}, true, "+/b", false, "", "no resource matches"},
		{[]string{"a", "a/+", "a/+/#"}, true, "a/#", true, "", "together"},
		{[]string{"$share/x", "dev/+/up"}, true, "$share/g/dev/7/up", true, "dev/+/up", "contains"},
		{[]string{"dev/+/up"}, false, "dev/7/up", true, "dev/+/up", "matches"},
		{[]string{"dev/+/up"}, false, "dev/7/down", false, "dev/+/up", `level 3 ("down") differs`},
		{[]string{"dev/+/up"}, false, "dev/7", false, "dev/+/up", "fewer levels"},
		{[]string{"#"}, false, "$SYS/x", false, "", "never matches a '$' topic"},
		{nil, false, "a", false, "", "no resources"},
		{[]string{"a"}, false, "a/#", false, "", "wildcard"},
	} {
		a, err := Compile(tc.resources)
		if err != nil {
			t.Fatal(err)
		}
		var d Decision
		if tc.subscribe {
			d = a.ExplainSubscribe(tc.topic)
		} else {
			d = a.ExplainPublish(tc.topic)
		}
		if d.Allowed != tc.allowed || d.Resource != tc.resource || !strings.Contains(d.Reason, tc.reason) {
			t.Errorf("%q %v %q: %+v; want allowed=%v resource=%q reason ~%q", tc.resources, tc.subscribe, tc.topic, d, tc.allowed, tc.resource, tc.reason)
		}
	}
}

// Over the exhaustive universe, Explain's verdict is exactly the ACL's.
func TestExplainAgreesExhaustively(t *testing.T) {
	filters := validFilters([]string{"a", "b", "", "+", "#"}, 3)
	for _, r := range filters[:80] {
		for _, r2 := range filters[80:120] {
			a, _ := Compile([]string{r, r2})
			for _, f := range filters {
				if got, want := a.ExplainSubscribe(f).Allowed, a.Covers(f); got != want {
					t.Fatalf("%q subscribe %q: explain %v, Covers %v", a.Filters(), f, got, want)
				}
				if ValidateTopic(f) == nil {
					if got, want := a.ExplainPublish(f).Allowed, a.Match(f); got != want {
						t.Fatalf("%q publish %q: explain %v, Match %v", a.Filters(), f, got, want)
					}
				}
			}
		}
	}
}
