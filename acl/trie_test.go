package acl

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/tokenmq/tokenmq/internal/testkit"
)

// universe returns every valid topic of 1 to depth levels over the given words.
func universe(words []string, depth int) []string {
	var out []string
	for _, t := range testkit.Levels(words, depth) {
		if ValidateTopic(t) == nil {
			out = append(out, t)
		}
	}
	return out
}

// refCovers is the brute-force reference for ACL.Covers: every topic of the
// universe that f matches is matched by some resource.
func refCovers(resources []string, f string, topics []string) bool {
	for _, t := range topics {
		if !Match(f, t) {
			continue
		}
		covered := false
		for _, r := range resources {
			if Match(r, t) {
				covered = true
				break
			}
		}
		if !covered {
			return false
		}
	}
	return true
}

func refMatchAny(resources []string, t string) bool {
	for _, r := range resources {
		if Match(r, t) {
			return true
		}
	}
	return false
}

func validFilters(words []string, depth int) []string {
	var out []string
	for _, f := range testkit.Levels(words, depth) {
		if ValidateFilter(f) == nil {
			out = append(out, f)
		}
	}
	return out
}

// Containment of every pair of filters of up to three levels over a small
// alphabet, against the brute-force reference over every topic of up to
// four levels.
func TestCoversExhaustiveSingle(t *testing.T) {
	filters := validFilters([]string{"a", "b", "", "+", "#", "$s"}, 3)
	topics := universe([]string{"a", "b", "", "$s", "z"}, 4)
	for _, r := range filters {
		acl, err := Compile([]string{r})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range filters {
			if got, want := acl.Covers(f), refCovers([]string{r}, f, topics); got != want {
				t.Fatalf("resource %q covers %q = %v, reference says %v", r, f, got, want)
			}
		}
		for _, tp := range topics {
			if got, want := acl.Match(tp), Match(r, tp); got != want {
				t.Fatalf("ACL{%q}.Match(%q) = %v, want %v", r, tp, got, want)
			}
		}
	}
}

// Unions: random sets of resources, where a filter can be covered by
// several resources together and by none alone.
func TestCoversExhaustiveUnions(t *testing.T) {
	filters := validFilters([]string{"a", "b", "", "+", "#", "$s"}, 3)
	topics := universe([]string{"a", "b", "", "$s", "z"}, 4)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 400 {
		n := 2 + rng.IntN(5)
		rs := make([]string, n)
		for i := range rs {
			rs[i] = filters[rng.IntN(len(filters))]
		}
		acl, err := Compile(rs)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range filters {
			if got, want := acl.Covers(f), refCovers(rs, f, topics); got != want {
				t.Fatalf("resources %q cover %q = %v, reference says %v", rs, f, got, want)
			}
		}
		for _, tp := range topics {
			if got, want := acl.Match(tp), refMatchAny(rs, tp); got != want {
				t.Fatalf("ACL%q.Match(%q) = %v, want %v", rs, tp, got, want)
			}
		}
	}
}

func TestCoversSpecCases(t *testing.T) {
	for _, tc := range []struct {
		resources []string
		filter    string
		want      bool
	}{
		// SPEC §3.2: resource a/+ allows a/b and a/+, denies a/# and +/b.
		{[]string{"a/+"}, "a/b", true},
		{[]string{"a/+"}, "a/+", true},
		{[]string{"a/+"}, "a/#", false},
		{[]string{"a/+"}, "+/b", false},
		// Union: no single resource contains a/#, together they do.
		{[]string{"a", "a/+", "a/+/#"}, "a/#", true},
		{[]string{"a/+", "a/+/#"}, "a/#", false}, // "a" itself is not covered
		{[]string{"#"}, "+/#", true},
		{[]string{"+/#"}, "#", true}, // every topic has a first level
		{[]string{"#"}, "$SYS/#", false},
		{[]string{"+/#"}, "$SYS/x", false},
		{[]string{"$SYS/#"}, "$SYS/broker/+", true},
		{[]string{"a/b", "a/c"}, "a/+", false},
		{[]string{"a/#"}, "a", true},
		{[]string{"a/#"}, "a/b/c/+/#", true},
		{[]string{"a/+/c"}, "a/+/c", true},
		{[]string{"a/+/c"}, "a//c", true},
		{[]string{"a/+/c"}, "a/+/+", false},
	} {
		acl, err := Compile(tc.resources)
		if err != nil {
			t.Fatal(err)
		}
		if got := acl.Covers(tc.filter); got != tc.want {
			t.Errorf("%q covers %q = %v, want %v", tc.resources, tc.filter, got, tc.want)
		}
	}
}

func TestNilACLAllowsNothing(t *testing.T) {
	var a *ACL
	if a.Match("a") || a.Covers("a") {
		t.Fatal("nil ACL allowed something")
	}
	empty, _ := Compile(nil)
	if empty.Match("a") || empty.Covers("#") {
		t.Fatal("empty ACL allowed something")
	}
}

func TestSharedFilter(t *testing.T) {
	for _, tc := range []struct {
		in, group, filter string
		ok                bool
	}{
		{"$share/g/a/b", "g", "a/b", true},
		{"$SHARE/g/#", "g", "#", true}, // Mochi treats the prefix case-insensitively
		{"$share/g", "g", "", true},
		{"$share//a", "", "a", true},
		{"a/b", "", "a/b", false},
		{"$sharex/g/a", "", "$sharex/g/a", false},
	} {
		g, f, ok := SharedFilter(tc.in)
		if g != tc.group || f != tc.filter || ok != tc.ok {
			t.Errorf("SharedFilter(%q) = %q, %q, %v", tc.in, g, f, ok)
		}
	}
}

// splitFuzzFilters turns a fuzz string into up to 6 resources.
func splitFuzzFilters(s string) []string {
	var out []string
	for _, r := range strings.Split(s, ",") {
		if ValidateFilter(r) == nil && len(out) < 6 && strings.Count(r, "/") < 5 {
			out = append(out, r)
		}
	}
	return out
}

// wordsOf collects the literal levels used, plus a fresh word, the empty
// level and a '$' word: enough topic levels to tell filters apart.
func wordsOf(filters ...string) []string {
	set := map[string]bool{"": true, "fresh~": true, "$d": true}
	for _, f := range filters {
		for _, l := range strings.Split(f, "/") {
			if l != "+" && l != "#" {
				set[l] = true
			}
		}
	}
	words := make([]string, 0, len(set))
	for w := range set {
		words = append(words, w)
	}
	slices.Sort(words)
	return words
}

func FuzzCovers(f *testing.F) {
	for _, s := range [][2]string{
		{"a/+", "a/#"}, {"a,a/+,a/+/#", "a/#"}, {"#", "$SYS/#"}, {"+/#", "#"}, {"a/b,a/c", "a/+"},
		{"$share/g/a", "a"}, {"/+,+/", "+/+"}, {"a/+/c,a/b/#", "a/+/c"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, resources, filter string) {
		rs := splitFuzzFilters(resources)
		if ValidateFilter(filter) != nil || strings.Count(filter, "/") > 4 || len(rs) == 0 {
			return
		}
		words := wordsOf(append(rs, filter)...)
		if len(words) > 5 {
			return // keep the brute-force universe small
		}
		depth := 2 + max(strings.Count(filter, "/"), maxSlashes(rs))
		topics := universe(words, min(depth, 5))
		acl, err := Compile(rs)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := acl.Covers(filter), refCovers(rs, filter, topics); got != want {
			t.Fatalf("%q covers %q = %v, reference says %v", rs, filter, got, want)
		}
		for _, tp := range topics {
			if got, want := acl.Match(tp), refMatchAny(rs, tp); got != want {
				t.Fatalf("ACL%q.Match(%q) = %v, want %v", rs, tp, got, want)
			}
		}
	})
}

func maxSlashes(fs []string) int {
	m := 0
	for _, f := range fs {
		m = max(m, strings.Count(f, "/"))
	}
	return m
}

// hundredResources is a realistic 100-resource token: device topics with
// wildcards at various levels.
func hundredResources() []string {
	rs := make([]string, 0, 100)
	for i := range 40 {
		rs = append(rs, fmt.Sprintf("fleet/site-%d/+/telemetry", i))
	}
	for i := range 40 {
		rs = append(rs, fmt.Sprintf("fleet/site-%d/device-%d/cmd/#", i, i))
	}
	for i := range 20 {
		rs = append(rs, fmt.Sprintf("alerts/%d/#", i))
	}
	return rs
}

// BenchmarkACLMatch100 is the publish/delivery hot path: one check against
// a token with 100 resources.
func BenchmarkACLMatch100(b *testing.B) {
	acl, err := Compile(hundredResources())
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct{ name, topic string }{
		{"allowed", "fleet/site-37/pump-9/telemetry"},
		{"allowed-deep", "fleet/site-12/device-12/cmd/valve/open"},
		{"denied", "fleet/site-99/pump-9/telemetry"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			want := refMatchAny(acl.Filters(), tc.topic)
			b.ReportAllocs()
			for b.Loop() {
				if acl.Match(tc.topic) != want {
					b.Fatal("wrong answer")
				}
			}
		})
	}
}

// BenchmarkNaiveLoop100 is what the trie replaces: Match against each of
// 100 filters in turn.
func BenchmarkNaiveLoop100(b *testing.B) {
	rs := hundredResources()
	b.ReportAllocs()
	for b.Loop() {
		if refMatchAny(rs, "fleet/site-99/pump-9/telemetry") {
			b.Fatal("matched")
		}
	}
}

func BenchmarkCovers100(b *testing.B) {
	acl, _ := Compile(hundredResources())
	b.ReportAllocs()
	for b.Loop() {
		if !acl.Covers("fleet/site-3/+/telemetry") {
			b.Fatal("not covered")
		}
	}
}

// Nodes with many literal children look them up through a hash index that
// is rebuilt as it grows: for every child count across the growth points,
// every child, its neighbours' prefixes and absent keys give the reference
// answer, for Match and for Covers.
func TestManyLiteralChildren(t *testing.T) {
	for _, n := range []int{1, 8, 9, 16, 17, 33, 64, 65, 300} {
		var rs []string
		for i := range n {
			rs = append(rs, fmt.Sprintf("fleet/d%d/up", i), fmt.Sprintf("fleet/d%d/sub/k%d", i, i%12))
		}
		rs = append(rs, "fleet/+/down", "other/#")
		a, err := Compile(rs)
		if err != nil {
			t.Fatal(err)
		}
		var topics []string
		for i := range n + 5 {
			for _, tail := range []string{"up", "down", "sub/k0", fmt.Sprintf("sub/k%d", i%12), "up/x", "zz", "sub/zz"} { // zz: a value no filter names
				topics = append(topics, fmt.Sprintf("fleet/d%d/%s", i, tail), fmt.Sprintf("fleet/D%d/%s", i, tail), fmt.Sprintf("fleet/d%d0/%s", i, tail))
			}
		}
		topics = append(topics, "fleet/d/up", "fleet//up", "fleet/zz/up", "fleet/zz/down", "zz", "other", "other/d1/up", "$SYS/d1/up")
		for _, topic := range topics {
			if got, want := a.Match(topic), refMatchAny(rs, topic); got != want {
				t.Fatalf("%d children: Match(%q) = %v, want %v", n, topic, got, want)
			}
		}
		for _, f := range []string{"fleet/d1/#", "fleet/d1/+", "fleet/+/up", "fleet/d3/sub/+", fmt.Sprintf("fleet/d%d/up", n-1), fmt.Sprintf("fleet/d%d/up", n), "fleet/+/down", "other/+/up"} {
			if got, want := a.Covers(f), refCovers(rs, f, topics); got != want {
				t.Fatalf("%d children: Covers(%q) = %v, want %v", n, f, got, want)
			}
		}
	}
}

// BenchmarkCompile100 is the first CONNECT of a token with 100 resources:
// its ACL is compiled once, then cached with the token's answer.
func BenchmarkCompile100(b *testing.B) {
	rs := hundredResources()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(rs); err != nil {
			b.Fatal(err)
		}
	}
}
