package tokenauth

import (
	"strings"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/token"
)

func TestParseUpload(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload string
		tok     string
		typ     token.Actions
		ok      bool
	}{
		{"token and type", `{"token":"abc","type":"RW"}`, "abc", token.ActionReadWrite, true},
		{"Token key", `{"Token":"abc","type":"R"}`, "abc", token.ActionRead, true},
		{"W", `{"token":"abc","type":"W"}`, "abc", token.ActionWrite, true},
		{"no type", `{"token":"abc"}`, "", 0, false},
		{"lower-case type", `{"token":"abc","type":"rw"}`, "", 0, false},
		{"not JSON", `token=abc`, "", 0, false},
		{"too large", `{"token":"` + strings.Repeat("a", MaxUploadPayload) + `","type":"R"}`, "", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, typ, err := ParseUpload([]byte(tc.payload))
			if (err == nil) != tc.ok || tok != tc.tok || typ != tc.typ {
				t.Fatalf("ParseUpload = %q, %v, %v", tok, typ, err)
			}
		})
	}
}

// A valid renewal replaces the rights of its type: the old token no longer
// matters to the connection (its revocation kicks no one), the adapter is
// asked to prune, and the new token's expiry governs.
func TestRenewReplacesRights(t *testing.T) {
	f := newFixture(t, nil)
	old, _ := f.apply(token.ActionReadWrite, time.Hour, "old/#")
	next, _ := f.apply(token.ActionReadWrite, time.Hour, "new/#")
	s, c := f.mustConnect("dev", "d", old)
	if got := s.Renew(next, token.ActionReadWrite); got != Renewed {
		t.Fatalf("Renew = %v", got)
	}
	r := s.Rights()
	if r.Readable("old/x") || r.Writable("old/x") || !r.Readable("new/x") || !r.Writable("new/x") {
		t.Fatal("rights not replaced")
	}
	if _, _, _, rs := c.snapshot(); len(rs) != 2 || rs[1] != r {
		t.Fatal("the adapter was not asked to prune with the new rights")
	}
	f.revoke(old)
	f.revoke(next)
	c.waitKicked(t, CauseRevoked) // by the new token's revocation
	if !f.obs.has("renewal:renewed") {
		t.Fatal("renewal not observed")
	}
}

// Renewing one type keeps the others: an RW token renewed as R stays the
// connection's W token; in the ApsaraMQ form, R|t1|W|t2 renewed as W keeps t1.
func TestRenewOneType(t *testing.T) {
	f := newFixture(t, nil)
	rw, _ := f.apply(token.ActionReadWrite, time.Hour, "a/#")
	r2, _ := f.apply(token.ActionRead, time.Hour, "b/#")
	s, _ := f.mustConnect("dev", "d", rw)
	if got := s.Renew(r2, 0); got != Renewed { // 0: the token's own Actions (R)
		t.Fatalf("Renew = %v", got)
	}
	r := s.Rights()
	if r.Readable("a/x") || !r.Readable("b/x") || !r.Writable("a/x") || r.Writable("b/x") {
		t.Fatal("RW renewed as R: want read b/#, write a/#")
	}
	if typ := s.heldType(s.TokenIDs()[0]); typ != token.ActionWrite {
		t.Fatalf("the RW token is now held as %v, want W", typ)
	}

	apsara := "Token|AK1|" + testInstance
	t1, _ := f.apply(token.ActionRead, time.Hour, "r/#")
	t2, _ := f.apply(token.ActionWrite, time.Hour, "w/#")
	t3, _ := f.apply(token.ActionWrite, time.Hour, "w3/#")
	s, _ = f.mustConnect("aps", apsara, "R|"+t1+"|W|"+t2)
	if got := s.Renew(t3, token.ActionWrite); got != Renewed {
		t.Fatalf("Renew = %v", got)
	}
	r = s.Rights()
	if !r.Readable("r/x") || r.Writable("w/x") || !r.Writable("w3/x") {
		t.Fatal("W renewal: want read r/#, write w3/#")
	}
}

// Invalid renewals change nothing and are refused; RefuseRenewal kicks with
// code 1 and 0x87.
func TestRenewInvalid(t *testing.T) {
	f := newFixture(t, nil)
	apsara := "Token|AK1|" + testInstance
	cur, _ := f.apply(token.ActionReadWrite, time.Hour, "a/#")
	readOnly, _ := f.apply(token.ActionRead, time.Hour, "a/#")
	otherKey, _, err := f.ts.Apply(t.Context(), token.ApplyRequest{InstanceID: testInstance, AccessKeyID: "AK2",
		Resources: []string{"a/#"}, Actions: token.ActionReadWrite, ExpireTime: f.ts.Clock.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	revoked, _ := f.apply(token.ActionReadWrite, time.Hour, "a/#")
	f.revoke(revoked)
	s, c := f.mustConnect("dev", apsara, "RW|"+cur)
	before := s.Rights()
	for name, tc := range map[string]struct {
		tok string
		typ token.Actions
	}{
		"not a token":          {"hello world", token.ActionRead},
		"forged":               {cur[:len(cur)-4] + "AAAA", token.ActionRead},
		"revoked":              {revoked, token.ActionRead},
		"type not covered":     {readOnly, token.ActionWrite},
		"another access key":   {otherKey, token.ActionReadWrite},
		"longer than a token ": {strings.Repeat("A", MaxTokenLength+1), token.ActionRead},
	} {
		if got := s.Renew(tc.tok, tc.typ); got != RenewInvalid {
			t.Errorf("%s: Renew = %v, want RenewInvalid", name, got)
		}
	}
	if s.Rights() != before {
		t.Fatal("an invalid renewal changed the rights")
	}
	s.RefuseRenewal(token.ActionWrite, "invalid renewal")
	n := c.waitKicked(t, CauseInvalid)
	if len(n) != 1 || noticeBody(t, n[0])["code"] != float64(1) || noticeBody(t, n[0])["type"] != "W" {
		t.Fatalf("notices %+v", n)
	}
	if !f.obs.has("renewal:invalid") || !f.obs.has("disconnected:invalid_renewal") || CauseInvalid.Reason() != ReasonNotAuthorized {
		t.Fatal("invalid renewal not observed as such")
	}
}

// With the token service down, a renewal is neither accepted nor refused.
func TestRenewUnavailable(t *testing.T) {
	f := newFixture(t, nil)
	cur, _ := f.apply(token.ActionReadWrite, time.Hour, "a/#")
	next, _ := f.apply(token.ActionReadWrite, time.Hour, "b/#")
	s, c := f.mustConnect("dev", "d", cur)
	f.val.down.Store(true)
	if got := s.Renew(next, token.ActionReadWrite); got != RenewUnavailable {
		t.Fatalf("Renew = %v, want RenewUnavailable", got)
	}
	if !s.Rights().Readable("a/x") || s.Rights().Readable("b/x") || s.Closing() {
		t.Fatal("an unchecked renewal changed the connection")
	}
	if _, d, _, _ := c.snapshot(); len(d) != 0 || !f.obs.has("renewal:unavailable") {
		t.Fatal("outage during renewal mishandled")
	}
}
