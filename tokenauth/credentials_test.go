package tokenauth

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/tokenmq/tokenmq/token"
)

const tok1, tok2 = "AQAAAAHSOnBC1MlXIJQFnXksMS-GAAABogX_oYEc", "BQAAAAHSOnBC1MlXIJQFnXksMS-GAAABogX_oYEc"

func TestParseCredentials(t *testing.T) {
	for _, tc := range []struct {
		name       string
		user, pass string
		noPass     bool
		plain      bool
		want       Credentials
		wantErr    bool
	}{
		{name: "apsara R and W", user: "Token|AK1|inst", pass: "R|" + tok1 + "|W|" + tok2, plain: true,
			want: Credentials{Form: FormApsara, AccessKeyID: "AK1", InstanceID: "inst", Tokens: []Credential{{token.ActionRead, tok1}, {token.ActionWrite, tok2}}}},
		{name: "apsara W first", user: "Token|AK1|inst", pass: "W|" + tok2 + "|R|" + tok1,
			want: Credentials{Form: FormApsara, AccessKeyID: "AK1", InstanceID: "inst", Tokens: []Credential{{token.ActionWrite, tok2}, {token.ActionRead, tok1}}}},
		{name: "apsara RW", user: "Token|AK1|inst", pass: "RW|" + tok1,
			want: Credentials{Form: FormApsara, AccessKeyID: "AK1", InstanceID: "inst", Tokens: []Credential{{token.ActionReadWrite, tok1}}}},
		{name: "plain", user: "device-7", pass: tok1, plain: true, want: Credentials{Form: FormPlain, Tokens: []Credential{{0, tok1}}}},
		{name: "plain without username", user: "", pass: tok1, plain: true, want: Credentials{Form: FormPlain, Tokens: []Credential{{0, tok1}}}},
		{name: "plain turned off", user: "device-7", pass: tok1, wantErr: true},
		{name: "no password", user: "Token|AK1|inst", noPass: true, plain: true, wantErr: true},
		{name: "empty password", user: "x", pass: "", plain: true, wantErr: true},
		{name: "username with two parts", user: "Token|AK1", pass: "R|" + tok1, plain: true, wantErr: true},
		{name: "username with four parts", user: "Token|AK1|inst|x", pass: "R|" + tok1, plain: true, wantErr: true},
		{name: "empty access key", user: "Token||inst", pass: "R|" + tok1, plain: true, wantErr: true},
		{name: "odd password fields", user: "Token|AK1|inst", pass: "R|" + tok1 + "|W", wantErr: true},
		{name: "type twice", user: "Token|AK1|inst", pass: "R|" + tok1 + "|R|" + tok2, wantErr: true},
		{name: "RW twice", user: "Token|AK1|inst", pass: "RW|" + tok1 + "|RW|" + tok2, wantErr: true},
		{name: "unknown type", user: "Token|AK1|inst", pass: "X|" + tok1, wantErr: true},
		{name: "lower-case type", user: "Token|AK1|inst", pass: "r|" + tok1, wantErr: true},
		{name: "empty token", user: "Token|AK1|inst", pass: "R|", wantErr: true},
		{name: "bare token in apsara form", user: "Token|AK1|inst", pass: tok1, wantErr: true},
		{name: "token too long", user: "d", pass: strings.Repeat("A", 129), plain: true, wantErr: true},
		{name: "token with pipe in plain form", user: "d", pass: "R|" + tok1, plain: true, wantErr: true},
		{name: "token not base64url", user: "d", pass: "abc+/=", plain: true, wantErr: true},
		{name: "oversized password", user: "Token|AK1|inst", pass: strings.Repeat("R|"+tok1+"|", 1000), wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseCredentials([]byte(tc.user), []byte(tc.pass), !tc.noPass, tc.plain)
			if tc.wantErr {
				if !errors.Is(err, ErrBadCredentials) {
					t.Fatalf("got %+v, %v; want ErrBadCredentials", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Form != tc.want.Form || got.AccessKeyID != tc.want.AccessKeyID || got.InstanceID != tc.want.InstanceID || len(got.Tokens) != len(tc.want.Tokens) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for i := range got.Tokens {
				if got.Tokens[i] != tc.want.Tokens[i] {
					t.Fatalf("token %d: got %+v, want %+v", i, got.Tokens[i], tc.want.Tokens[i])
				}
			}
		})
	}
}

func FuzzParseCredentials(f *testing.F) {
	f.Add("Token|AK|inst", "R|"+tok1+"|W|"+tok2, true)
	f.Add("Token|AK|inst", "RW|"+tok1, false)
	f.Add("dev", tok1, true)
	f.Add("Token|||", "|||", true)
	f.Add("Token|a|b", "R|x|R|y", true)
	f.Fuzz(func(t *testing.T, user, pass string, plain bool) {
		c, err := ParseCredentials([]byte(user), []byte(pass), true, plain)
		if want, ok := referenceCredentials(user, pass, plain); ok != (err == nil) || ok && !reflect.DeepEqual(c, want) {
			t.Fatalf("ParseCredentials(%q, %q, plain=%v) = %+v, %v; the reference says %+v, accepted=%v", user, pass, plain, c, err, want, ok)
		}
		if err != nil {
			if !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("error %v is not ErrBadCredentials", err)
			}
			return
		}
		if len(c.Tokens) == 0 || len(c.Tokens) > 3 {
			t.Fatalf("%d tokens accepted", len(c.Tokens))
		}
		var r, w int
		for _, cr := range c.Tokens {
			if checkTokenShape(cr.Token) != nil {
				t.Fatalf("token %q accepted", cr.Token)
			}
			if cr.Type&token.ActionRead != 0 {
				r++
			}
			if cr.Type&token.ActionWrite != 0 {
				w++
			}
		}
		switch c.Form {
		case FormApsara:
			if !strings.HasPrefix(user, "Token|") || c.AccessKeyID == "" || c.InstanceID == "" || r+w == 0 {
				t.Fatalf("apsara credentials %+v from %q", c, user)
			}
		case FormPlain:
			if !plain || strings.HasPrefix(user, "Token|") || c.Tokens[0].Token != pass {
				t.Fatalf("plain credentials %+v from %q/%q", c, user, pass)
			}
		default:
			t.Fatalf("form %d", c.Form)
		}
	})
}

// referenceCredentials states SPEC §3.1's credential forms the plain way
// (split on '|'), for FuzzParseCredentials to hold the parser to.
func referenceCredentials(user, pass string, plain bool) (Credentials, bool) {
	if pass == "" {
		return Credentials{}, false
	}
	if !strings.HasPrefix(user, "Token|") {
		if !plain || checkTokenShape(pass) != nil {
			return Credentials{}, false
		}
		return Credentials{Form: FormPlain, Tokens: []Credential{{Token: pass}}}, true
	}
	parts := strings.Split(user, "|")
	fields := strings.Split(pass, "|")
	if len(parts) != 3 || parts[1] == "" || parts[2] == "" || len(fields)%2 != 0 || len(fields) > 6 {
		return Credentials{}, false
	}
	c := Credentials{Form: FormApsara, AccessKeyID: parts[1], InstanceID: parts[2]}
	types := map[string]token.Actions{"R": token.ActionRead, "W": token.ActionWrite, "RW": token.ActionReadWrite}
	count := map[string]int{}
	for i := 0; i < len(fields); i += 2 {
		typ, ok := types[fields[i]]
		count[fields[i]]++
		if !ok || count[fields[i]] > 1 || checkTokenShape(fields[i+1]) != nil {
			return Credentials{}, false
		}
		c.Tokens = append(c.Tokens, Credential{Type: typ, Token: fields[i+1]})
	}
	return c, true
}
