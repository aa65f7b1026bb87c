package tokenauth

import (
	"errors"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/acl"
	"github.com/tokenmq/tokenmq/token"
)

func grantOf(t *testing.T, actions token.Actions, resources ...string) *Grant {
	t.Helper()
	a, err := acl.Compile(resources)
	if err != nil {
		t.Fatal(err)
	}
	return &Grant{Grant: token.Grant{Actions: actions, Resources: resources}, acl: a}
}

// SPEC §3.2 as the rights state it: publish by matching (never $SYS or
// $share), subscribe by containment ($share judged by its filter),
// delivery by matching; several tokens unite.
func TestRights(t *testing.T) {
	r := RightsOf([]Held{
		{Grant: grantOf(t, token.ActionReadWrite, "a/+", "$data/#"), Type: token.ActionRead},
		{Grant: grantOf(t, token.ActionReadWrite, "a/b/#"), Type: token.ActionRead},
		{Grant: grantOf(t, token.ActionWrite, "w/#", "#"), Type: token.ActionWrite},
	})
	for _, tc := range []struct {
		f         string
		read, pub bool
	}{
		{"a/x", true, true}, {"a/+", true, true}, {"a/#", false, true}, {"+/b", false, true}, // (no topic name has a wildcard: Mochi refuses such publishes first)
		{"a/b/c/d", true, true}, {"a/b/#", true, true}, {"$data/x", true, false},
		{"$share/g/a/+", true, false}, {"$share/g/a/#", false, false}, {"$share/g/", false, false},
		{"$share/g/a/#/x", false, false}, {"$SYS/x", false, false}, {"$sys/x", false, false},
		{"$share/g/w", false, false}, {"", false, false}, {"w/x", false, true}, {"zzz", false, true},
	} {
		if got := r.Readable(tc.f); got != tc.read {
			t.Errorf("Readable(%q) = %v", tc.f, got)
		}
		if got := r.Writable(tc.f); got != tc.pub {
			t.Errorf("Writable(%q) = %v", tc.f, got)
		}
	}
	for _, none := range []*Rights{nil, NoRights, RightsOf(nil)} {
		if none.Readable("a/x") || none.Writable("a/x") {
			t.Fatal("empty rights allow something")
		}
	}
	if !ReservedTopic("$SHARE/x") || ReservedTopic("$data/x") || ReservedTopic("SYS/x") {
		t.Fatal("ReservedTopic")
	}
}

// Direct asks the validator every time, with the core's outage and denial
// semantics; Authenticate over it is what the EMQX webhook uses.
func TestDirectLookup(t *testing.T) {
	f := newFixture(t, nil)
	tok, rec := f.apply(token.ActionReadWrite, time.Hour, "a/#")
	l := Direct(f.val, testInstance)
	g, err := l.Lookup(t.Context(), tok)
	if err != nil || g.TokenID != rec.ID || !g.ACL().Match("a/b") {
		t.Fatalf("Lookup: %+v, %v", g, err)
	}
	f.revoke(tok)
	if _, err := l.Lookup(t.Context(), tok); !errors.Is(err, token.ErrRevoked) {
		t.Fatalf("revoked token: %v", err) // not cached: known at once
	}
	f.val.down.Store(true)
	if _, err := l.Lookup(t.Context(), tok); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("outage: %v", err)
	}
}

func TestExpiry(t *testing.T) {
	soon, late := time.Unix(1_800_000_000, 0), time.Unix(1_900_000_000, 0)
	hs := []Held{{Grant: &Grant{Grant: token.Grant{ExpireTime: late}}}, {Grant: &Grant{Grant: token.Grant{ExpireTime: soon}}}}
	if got := Expiry(hs); !got.Equal(soon) {
		t.Fatalf("Expiry = %v, want %v", got, soon)
	}
	if !Expiry(nil).IsZero() {
		t.Fatal("Expiry of nothing is not zero")
	}
}

func TestCheckGrant(t *testing.T) {
	g := token.Grant{InstanceID: "i", AccessKeyID: "AK1", Actions: token.ActionRead}
	aps := Credentials{Form: FormApsara, AccessKeyID: "AK1"}
	for _, tc := range []struct {
		name  string
		creds Credentials
		inst  string
		typ   token.Actions
		want  error
	}{
		{"ok", aps, "i", token.ActionRead, nil},
		{"other instance", aps, "j", token.ActionRead, ErrGrantInstance},
		{"other key", Credentials{Form: FormApsara, AccessKeyID: "AK2"}, "i", token.ActionRead, ErrGrantAccessKey},
		{"plain ignores the key", Credentials{Form: FormPlain}, "i", token.ActionRead, nil},
		{"type", aps, "i", token.ActionWrite, ErrGrantType},
	} {
		if err := CheckGrant(tc.creds, tc.inst, "dev-1", g, tc.typ); err != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}
