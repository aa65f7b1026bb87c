package acl

import (
	"errors"
	"strings"
	"testing"

	"github.com/tokenmq/tokenmq/internal/testkit"
)

func TestValidateFilter(t *testing.T) {
	for _, tc := range []struct {
		f    string
		want error
	}{
		// Valid filters from MQTT 5.0 §4.7.1 and §4.7.3.
		{"sport/tennis/player1/#", nil},
		{"sport/#", nil},
		{"#", nil},
		{"+", nil},
		{"+/tennis/#", nil},
		{"sport/+/player1", nil},
		{"/+", nil},
		{"+/+", nil},
		{"/finance", nil},
		{"/", nil},
		{"a//b", nil},
		{"$SYS/#", nil},
		{"ünïcode/+", nil},
		// Invalid ones from the same sections.
		{"sport/tennis#", ErrMultiLevelWildcard},
		{"sport/tennis/#/ranking", ErrMultiLevelWildcard},
		{"#/a", ErrMultiLevelWildcard},
		{"##", ErrMultiLevelWildcard},
		{"sport+", ErrSingleLevelWildcard},
		{"+a", ErrSingleLevelWildcard},
		{"a/++", ErrSingleLevelWildcard},
		{"+#", ErrSingleLevelWildcard},
		{"", ErrEmpty},
		{"a\x00b", ErrNUL},
		{"a/\xc3", ErrInvalidUTF8},
		{"\xed\xa0\x80", ErrInvalidUTF8}, // a UTF-16 surrogate [MQTT-1.5.4-1]
		{strings.Repeat("a", 65536), ErrTooLong},
	} {
		if got := ValidateFilter(tc.f); !errors.Is(got, tc.want) {
			t.Errorf("ValidateFilter(%q) = %v, want %v", clipForLog(tc.f), got, tc.want)
		}
	}
	if err := ValidateFilter(strings.Repeat("a", 65535)); err != nil {
		t.Errorf("65535-byte filter: %v", err)
	}
}

func TestValidateTopic(t *testing.T) {
	for _, tc := range []struct {
		topic string
		want  error
	}{
		{"sport/tennis", nil},
		{"/", nil},
		{"$SYS/broker", nil},
		{"a+b", ErrWildcardInTopic},
		{"a/#", ErrWildcardInTopic},
		{"", ErrEmpty},
		{"a\x00", ErrNUL},
	} {
		if got := ValidateTopic(tc.topic); !errors.Is(got, tc.want) {
			t.Errorf("ValidateTopic(%q) = %v, want %v", tc.topic, got, tc.want)
		}
	}
}

func TestMatchSpecExamples(t *testing.T) {
	for _, tc := range []struct {
		f, t string
		want bool
	}{
		// MQTT 5.0 §4.7.1.2: "sport/tennis/player1/#" matches ...
		{"sport/tennis/player1/#", "sport/tennis/player1", true},
		{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
		{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
		{"sport/#", "sport", true}, // '#' matches the parent level
		// §4.7.1.3: "sport/tennis/+" ...
		{"sport/tennis/+", "sport/tennis/player1", true},
		{"sport/tennis/+", "sport/tennis/player2", true},
		{"sport/tennis/+", "sport/tennis/player1/ranking", false},
		{"sport/+", "sport", false},
		{"sport/+", "sport/", true},
		{"+/+", "/finance", true},
		{"/+", "/finance", true},
		{"+", "/finance", false},
		// §4.7.2: wildcards at the start do not match '$' topics [MQTT-4.7.2-1].
		{"#", "$SYS/monitor/Clients", false},
		{"+/monitor/Clients", "$SYS/monitor/Clients", false},
		{"$SYS/#", "$SYS/monitor/Clients", true},
		{"$SYS/monitor/+", "$SYS/monitor/Clients", true},
		// Plain levels compare exactly (the trap in mochi's auth.MatchTopic).
		{"a/+", "a/b/c", false},
		{"a/b", "a/bc", false},
		{"a/bc", "a/b", false},
		{"a", "a/", false},
		{"a/", "a", false},
		{"a//b", "a//b", true},
		{"a/+/b", "a//b", true},
		{"#", "a", true},
		{"#", "/", true},
	} {
		if got := Match(tc.f, tc.t); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.f, tc.t, got, tc.want)
		}
	}
}

// refMatch is the brute-force reference: split into levels and compare.
func refMatch(f, t string) bool {
	if strings.HasPrefix(t, "$") && (strings.HasPrefix(f, "+") || strings.HasPrefix(f, "#")) {
		return false
	}
	fl, tl := strings.Split(f, "/"), strings.Split(t, "/")
	for i, l := range fl {
		if l == "#" {
			return true
		}
		if i >= len(tl) || (l != "+" && l != tl[i]) {
			return false
		}
	}
	return len(fl) == len(tl)
}

// Every filter and topic of up to four levels over a small alphabet: Match
// agrees with the reference on all of them.
func TestMatchExhaustive(t *testing.T) {
	filters := testkit.Levels([]string{"a", "b", "", "+", "#", "$s"}, 4)
	topics := testkit.Levels([]string{"a", "b", "", "$s"}, 4)
	n := 0
	for _, f := range filters {
		if ValidateFilter(f) != nil {
			continue
		}
		for _, tp := range topics {
			if ValidateTopic(tp) != nil {
				continue
			}
			n++
			if got, want := Match(f, tp), refMatch(f, tp); got != want {
				t.Fatalf("Match(%q, %q) = %v, reference says %v", f, tp, got, want)
			}
		}
	}
	if n < 100000 {
		t.Fatalf("only %d pairs compared", n)
	}
}

func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"sport/tennis/player1/#", "sport/tennis/player1"}, {"sport/+", "sport/"}, {"+/+", "/finance"},
		{"#", "$SYS/x"}, {"a/+", "a/b/c"}, {"a//#", "a/"}, {"+", ""}, {"/#", "/"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, filter, topic string) {
		if ValidateFilter(filter) != nil || ValidateTopic(topic) != nil {
			return
		}
		if got, want := Match(filter, topic), refMatch(filter, topic); got != want {
			t.Fatalf("Match(%q, %q) = %v, reference says %v", filter, topic, got, want)
		}
	})
}

// FuzzValidateFilter checks the validator against a level-by-level reference.
func FuzzValidateFilter(f *testing.F) {
	for _, s := range []string{"a/#", "#/a", "a+", "+", "a/+/b", "", "a\x00", "\xff", "//", "+#"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		valid := s != "" && len(s) <= 65535 && !strings.ContainsRune(s, 0) && strings.ToValidUTF8(s, "\uFFFD") == s
		if valid {
			ls := strings.Split(s, "/")
			for i, l := range ls {
				if strings.Contains(l, "#") && (l != "#" || i != len(ls)-1) || strings.Contains(l, "+") && l != "+" {
					valid = false
				}
			}
		}
		if got := ValidateFilter(s) == nil; got != valid {
			t.Fatalf("ValidateFilter(%q) valid=%v, reference says %v", s, got, valid)
		}
	})
}

func BenchmarkMatch(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if !Match("devices/+/telemetry/#", "devices/pump-17/telemetry/pressure/inlet") {
			b.Fatal("no match")
		}
	}
}

func clipForLog(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
