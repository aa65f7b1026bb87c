package api

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/acl"
	"github.com/tokenmq/tokenmq/token"
)

// sdkStringToSign is the Alibaba Go SDK's own construction
// (sdk/auth/rpc_signature_composer.go, buildRpcStringToSign), the reference
// our canonicaliser must agree with byte for byte.
func sdkStringToSign(method string, ps map[string]string) string {
	v := url.Values{}
	for k, val := range ps {
		if k != "Signature" {
			v.Add(k, val)
		}
	}
	s := v.Encode()
	s = strings.ReplaceAll(s, "+", "%20")
	s = strings.ReplaceAll(s, "*", "%2A")
	s = strings.ReplaceAll(s, "%7E", "~")
	return method + "&%2F&" + url.QueryEscape(s)
}

func FuzzStringToSign(f *testing.F) {
	f.Add("POST", "Resources", "a/+,b/#", "Name", "dev ice*~")
	f.Add("GET", "Token", "LzMT+XLFl5s/YWJ==", "SignatureType", "")
	f.Add("POST", "Ünï", "值", "a b", "%41")
	f.Fuzz(func(t *testing.T, method, k1, v1, k2, v2 string) {
		ps := map[string]string{"Action": "QueryToken", "AccessKeyId": "AK", "Signature": "ignored", k1: v1, k2: v2}
		if got, want := StringToSign(method, ps), sdkStringToSign(method, ps); got != want {
			t.Fatalf("StringToSign:\n got %q\nwant %q", got, want)
		}
	})
}

// FuzzSignatureRoundTrip: what a client signs and form-encodes, the server
// parses back to the same parameters and verifies; any change to a value
// breaks the signature.
func FuzzSignatureRoundTrip(f *testing.F) {
	f.Add("Resources", "a/+,b/#", "secret-0123456789", true)
	f.Add("Name", "ü &=+%", "s", false)
	f.Fuzz(func(t *testing.T, k, v, secret string, sha256 bool) {
		if k == "" || k == "Signature" || !validUTF8(k) || !validUTF8(v) {
			return
		}
		method := SignatureHMACSHA1
		if sha256 {
			method = SignatureHMACSHA256
		}
		ps := map[string]string{"Action": "QueryToken", "SignatureMethod": method, k: v}
		sig := Sign(http.MethodPost, method, secret, ps)
		form := url.Values{}
		for name, val := range ps {
			form.Set(name, val)
		}
		parsed, perr := appendParams(nil, form.Encode())
		if perr != nil {
			t.Fatalf("server cannot parse what the client sent: %v", perr)
		}
		if len(parsed) != len(ps) {
			t.Fatalf("parsed %d parameters, sent %d", len(parsed), len(ps))
		}
		for _, p := range parsed {
			if ps[p.name] != p.value {
				t.Fatalf("parameter %q parsed as %q, sent %q", p.name, p.value, ps[p.name])
			}
		}
		keys, err := NewKeys([]AccessKey{{ID: "AK", Secret: secret + "-padded-to-16-chars", Role: RoleAdmin}})
		if err != nil {
			t.Fatal(err)
		}
		key := keys.lookup("AK")
		sig = Sign(http.MethodPost, method, key.Secret, ps)
		if ok, _ := verifySignature(http.MethodPost, method, key, parsed, sig); !ok {
			t.Fatal("a correctly signed request does not verify")
		}
		for i := range parsed {
			if parsed[i].name == k {
				parsed[i].value += "x"
			}
		}
		if ok, _ := verifySignature(http.MethodPost, method, key, parsed, sig); ok {
			t.Fatal("a changed value still verifies")
		}
	})
}

func validUTF8(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

// FuzzParseParams: arbitrary bodies never panic; what parses is valid UTF-8
// with unique names, and survives a re-encode unchanged.
func FuzzParseParams(f *testing.F) {
	for _, s := range []string{"a=1&b=2", "a=1&a=2", "=x", "a", "a=%zz", "a=%ff", "&&a=&", "a+b=c+d", "k=v;w"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		ps, err := appendParams(nil, raw)
		if err != nil {
			if err.Status != 400 || !strings.HasPrefix(err.Code, CodeInvalidParameter) {
				t.Fatalf("parse error %v, want 400 InvalidParameter*", err)
			}
			return
		}
		seen := map[string]bool{}
		form := url.Values{}
		for _, p := range ps {
			if seen[p.name] || p.name == "" || !validUTF8(p.name) || !validUTF8(p.value) {
				t.Fatalf("bad parameter accepted: %q=%q", p.name, p.value)
			}
			seen[p.name] = true
			form.Set(p.name, p.value)
		}
		again, err := appendParams(nil, form.Encode())
		if err != nil || len(again) != len(ps) {
			t.Fatalf("re-encoded parameters do not parse back: %v", err)
		}
		for _, p := range again {
			if v, _ := ps.get(p.name); v != p.value {
				t.Fatalf("%q: %q became %q", p.name, v, p.value)
			}
		}
	})
}

// FuzzApplyTokenParams drives ApplyToken's parameters through the whole
// handler: the answer is 200 or a 400 InvalidParameter.<Name>, never
// anything else; a 200 happens only for parameters a separate reference
// accepts, and a 400 stores nothing.
func FuzzApplyTokenParams(f *testing.F) {
	shared := newHarness(f, withNonceCapacity(1<<26))
	now := shared.clock.Now()
	hour := fmt.Sprint(now.Add(time.Hour).UnixMilli())
	f.Add("a/+,b/#", "R,W", hour, "")
	f.Add("a/#/b", "R", hour, "")
	f.Add("a,,b", "W,R", hour, "n")
	f.Add("#", "RW", hour, "")
	f.Add("+/+", "R", "12", "")
	f.Add("x", "W", fmt.Sprint(now.Add(59*time.Second).UnixMilli()), "")
	f.Add("x", "W", "1e3", "名字")
	f.Fuzz(func(t *testing.T, resources, actions, expire, name string) {
		hs := *shared
		hs.t = t // report through this input's T
		ps := applyParams(&hs, map[string]string{"Resources": resources, "Actions": actions, "ExpireTime": expire, "Name": name})
		signed := hs.signed(http.MethodPost, adminID, adminSecret, "ApplyToken", ps)
		form := url.Values{}
		for k, v := range signed {
			form.Set(k, v)
		}
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		before := hs.snapshot()
		rec := httptest.NewRecorder()
		hs.h.ServeHTTP(rec, req)
		wantOK := refApplyValid(resources, actions, expire, name, hs.clock.Now())
		switch {
		case rec.Code == 200 && !wantOK:
			t.Fatalf("accepted parameters the reference rejects: %q %q %q %q", resources, actions, expire, name)
		case rec.Code == 200:
			return
		case wantOK:
			t.Fatalf("rejected valid parameters (%d %s): %q %q %q %q", rec.Code, rec.Body, resources, actions, expire, name)
		case rec.Code != 400 || !strings.Contains(rec.Body.String(), `"Code":"InvalidParameter.`):
			t.Fatalf("bad parameters answered %d %s", rec.Code, rec.Body)
		}
		if hs.snapshot() != before {
			t.Fatal("a rejected ApplyToken changed the store")
		}
	})
}

// refApplyValid is an independent statement of ApplyToken's parameter rules.
func refApplyValid(resources, actions, expire, name string, now time.Time) bool {
	if resources == "" || actions == "" || expire == "" || !validUTF8(name) || len([]rune(name)) > token.MaxNameLength {
		return false
	}
	for _, r := range name {
		if r < 0x20 || (r >= 0x7f && r < 0xa0) {
			return false
		}
	}
	rs := strings.Split(resources, ",")
	if len(rs) > 100 {
		return false
	}
	for _, r := range rs {
		if acl.ValidateFilter(r) != nil {
			return false
		}
	}
	switch actions {
	case "R", "W", "R,W", "W,R":
	default:
		return false
	}
	var ms int64
	for _, c := range expire {
		if c < '0' || c > '9' || ms > (1<<53)/10 {
			return false
		}
		ms = ms*10 + int64(c-'0')
	}
	return ms <= 1<<53 && time.UnixMilli(ms).Sub(now) >= time.Minute
}

// FuzzParseTimestamp: parseTimestamp accepts exactly what time.Parse
// accepts in timestampLayout at that layout's length, with the same time.
func FuzzParseTimestamp(f *testing.F) {
	for _, s := range []string{"2026-12-02T16:19:27Z", "2024-02-29T00:00:00Z", "2023-02-29T00:00:00Z", "2026-13-01T00:00:00Z",
		"2026-12-31T23:59:60Z", "2026-12-02T24:00:00Z", "0000-01-01T00:00:00Z", "2026-12-02T16:19:27.5Z", "2026-12-02 16:19:27Z",
		"2026-1a-02T16:19:27Z", "+026-12-02T16:19:27Z", "2026-12-00T16:19:27Z", "2026-04-31T16:19:27Z", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseTimestamp(s)
		want, err := time.Parse(timestampLayout, s)
		wantOK := err == nil && len(s) == len(timestampLayout)
		if ok != wantOK || ok && !got.Equal(want) {
			t.Fatalf("%q: parseTimestamp = %v, %v; time.Parse = %v, %v", s, got, ok, want, err)
		}
	})
}
