package api

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// reqFor builds an HTTP request carrying ps.
func reqFor(hs *harness, method string, ps map[string]string) *http.Request {
	form := url.Values{}
	for k, v := range ps {
		form.Set(k, v)
	}
	if method == http.MethodGet {
		r, _ := http.NewRequest(method, hs.srv.URL+"/?"+form.Encode(), nil)
		return r
	}
	r, _ := http.NewRequest(method, hs.srv.URL+"/", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

// rawPost builds a POST whose form body is exactly body.
func rawPost(hs *harness, body string) *http.Request {
	r, _ := http.NewRequest(http.MethodPost, hs.srv.URL+"/", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

// edit returns a copy of ps with the changes applied, WITHOUT re-signing:
// an empty-string value in changes deletes the parameter.
func edit(ps map[string]string, changes map[string]string) map[string]string {
	out := make(map[string]string, len(ps))
	for k, v := range ps {
		out[k] = v
	}
	for k, v := range changes {
		if v == "" {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

// applyParams are valid ApplyToken parameters with overrides ("" deletes).
func applyParams(hs *harness, overrides map[string]string) map[string]string {
	return edit(map[string]string{
		"InstanceId": "inst-a", "Resources": "a/+,b/#", "Actions": "R,W",
		"ExpireTime": fmt.Sprint(hs.clock.Now().Add(time.Hour).UnixMilli()),
	}, overrides)
}

// encodeRaw form-encodes ps in sorted order, keeping bytes as they are
// (url.Values would do the same; this keeps invalid UTF-8 intact).
func encodeRaw(ps map[string]string) string {
	var parts []string
	for k, v := range ps {
		parts = append(parts, url.QueryEscape(k)+"="+url.QueryEscape(v))
	}
	return strings.Join(parts, "&")
}

func TestBadInput(t *testing.T) {
	hs := newHarness(t)
	tok := hs.apply("inst-a", "a/+", "R,W", time.Hour)
	post := http.MethodPost
	admin := func(action string, extra map[string]string) map[string]string {
		return hs.signed(post, adminID, adminSecret, action, extra)
	}
	apply := func(overrides map[string]string) *http.Request {
		return reqFor(hs, post, admin("ApplyToken", applyParams(hs, overrides)))
	}
	signedThenEdited := func(changes map[string]string) *http.Request {
		return reqFor(hs, post, edit(admin("ApplyToken", applyParams(hs, nil)), changes))
	}
	ms := func(d time.Duration) string { return fmt.Sprint(hs.clock.Now().Add(d).UnixMilli()) }
	stamp := func(d time.Duration) string { return hs.clock.Now().Add(d).UTC().Format(timestampLayout) }
	many := func(n int) string {
		rs := make([]string, n)
		for i := range rs {
			rs[i] = fmt.Sprintf("t/%d", i)
		}
		return strings.Join(rs, ",")
	}

	cases := []struct {
		name   string
		req    func() *http.Request
		status int
		code   string
	}{
		// Common parameters and the signature (SPEC §2.1).
		{"missing AccessKeyId", func() *http.Request { return signedThenEdited(map[string]string{"AccessKeyId": ""}) }, 400, "MissingParameter.AccessKeyId"},
		{"missing Signature", func() *http.Request { return signedThenEdited(map[string]string{"Signature": ""}) }, 400, "MissingParameter.Signature"},
		{"missing SignatureMethod", func() *http.Request { return signedThenEdited(map[string]string{"SignatureMethod": ""}) }, 400, "MissingParameter.SignatureMethod"},
		{"missing SignatureVersion", func() *http.Request { return signedThenEdited(map[string]string{"SignatureVersion": ""}) }, 400, "MissingParameter.SignatureVersion"},
		{"missing SignatureNonce", func() *http.Request { return signedThenEdited(map[string]string{"SignatureNonce": ""}) }, 400, "MissingParameter.SignatureNonce"},
		{"missing Timestamp", func() *http.Request { return signedThenEdited(map[string]string{"Timestamp": ""}) }, 400, "MissingParameter.Timestamp"},
		{"missing Action", func() *http.Request { return signedThenEdited(map[string]string{"Action": ""}) }, 400, "MissingParameter.Action"},
		{"unknown Action", func() *http.Request { return reqFor(hs, post, admin("DeleteEverything", nil)) }, 404, "ApiNotSupport"},
		{"unknown access key", func() *http.Request {
			return reqFor(hs, post, hs.signed(post, "AKNOBODY", adminSecret, "ApplyToken", applyParams(hs, nil)))
		}, 404, "InvalidAccessKeyId.NotFound"},
		{"wrong secret", func() *http.Request {
			return reqFor(hs, post, hs.signed(post, adminID, "wrong-secret-000000", "ApplyToken", applyParams(hs, nil)))
		}, 400, "SignatureDoesNotMatch"},
		{"parameter changed after signing", func() *http.Request { return signedThenEdited(map[string]string{"Resources": "#"}) }, 400, "SignatureDoesNotMatch"},
		{"parameter added after signing", func() *http.Request { return signedThenEdited(map[string]string{"Name": "x"}) }, 400, "SignatureDoesNotMatch"},
		{"signed for GET, sent as POST", func() *http.Request {
			return reqFor(hs, post, hs.signed(http.MethodGet, adminID, adminSecret, "ApplyToken", applyParams(hs, nil)))
		}, 400, "SignatureDoesNotMatch"},
		{"signature not base64", func() *http.Request { return signedThenEdited(map[string]string{"Signature": "%%%"}) }, 400, "SignatureDoesNotMatch"},
		{"timestamp 16 min old", func() *http.Request { return apply(map[string]string{"Timestamp": stamp(-16 * time.Minute)}) }, 400, "InvalidTimeStamp.Expired"},
		{"timestamp 16 min ahead", func() *http.Request { return apply(map[string]string{"Timestamp": stamp(16 * time.Minute)}) }, 400, "InvalidTimeStamp.Expired"},
		{"timestamp not UTC form", func() *http.Request { return apply(map[string]string{"Timestamp": "2026-11-22 10:00:00"}) }, 400, "InvalidTimeStamp.Format"},
		{"timestamp with offset", func() *http.Request { return apply(map[string]string{"Timestamp": "2026-11-22T10:00:00+08:00"}) }, 400, "InvalidTimeStamp.Format"},
		{"timestamp with fractional seconds", func() *http.Request {
			return apply(map[string]string{"Timestamp": hs.clock.Now().UTC().Format("2006-01-02T15:04:05.000Z")})
		}, 400, "InvalidTimeStamp.Format"},
		{"SignatureMethod MD5", func() *http.Request { return signedThenEdited(map[string]string{"SignatureMethod": "HMAC-MD5"}) }, 400, "InvalidParameter.SignatureMethod"},
		{"SignatureVersion 2.0", func() *http.Request { return apply(map[string]string{"SignatureVersion": "2.0"}) }, 400, "InvalidParameter.SignatureVersion"},
		{"Version of another API", func() *http.Request { return apply(map[string]string{"Version": "2019-01-01"}) }, 400, "InvalidVersion"},
		{"Format XML", func() *http.Request { return apply(map[string]string{"Format": "XML"}) }, 400, "InvalidParameter.Format"},
		{"parameter given twice", func() *http.Request {
			ps := admin("ApplyToken", applyParams(hs, nil))
			return rawPost(hs, encodeRaw(ps)+"&Resources=%23")
		}, 400, "InvalidParameter.Resources"},
		{"parameter in query and body", func() *http.Request {
			ps := admin("ApplyToken", applyParams(hs, nil))
			r := reqFor(hs, post, ps)
			r.URL.RawQuery = "Actions=R"
			return r
		}, 400, "InvalidParameter.Actions"},
		{"value not UTF-8", func() *http.Request {
			return rawPost(hs, encodeRaw(admin("ApplyToken", applyParams(hs, map[string]string{"Name": "dev\xff"}))))
		}, 400, "InvalidParameter.Name"},
		{"bad percent-encoding", func() *http.Request { return rawPost(hs, "Action=ApplyToken&Resources=%zz") }, 400, "InvalidParameter"},
		{"method PUT", func() *http.Request {
			r := reqFor(hs, post, admin("ApplyToken", applyParams(hs, nil)))
			r.Method = http.MethodPut
			return r
		}, 405, "UnsupportedHTTPMethod"},
		{"body over 1 MiB", func() *http.Request {
			return reqFor(hs, post, admin("ApplyToken", applyParams(hs, map[string]string{"Name": strings.Repeat("n", 1<<20)})))
		}, 413, "RequestEntityTooLarge"},

		// Roles and instances.
		{"broker key calls ApplyToken", func() *http.Request {
			return reqFor(hs, post, hs.signed(post, brokerID, brokerSecret, "ApplyToken", applyParams(hs, nil)))
		}, 403, "PermissionCheckFailed"},
		{"broker key calls RevokeToken", func() *http.Request {
			return reqFor(hs, post, hs.signed(post, brokerID, brokerSecret, "RevokeToken", map[string]string{"InstanceId": "inst-a", "Token": tok}))
		}, 403, "PermissionCheckFailed"},
		{"broker key calls ListTokens", func() *http.Request {
			return reqFor(hs, post, hs.signed(post, brokerID, brokerSecret, "ListTokens", map[string]string{"InstanceId": "inst-a"}))
		}, 403, "PermissionCheckFailed"},
		{"broker key calls ListClients", func() *http.Request {
			return reqFor(hs, post, hs.signed(post, brokerID, brokerSecret, "ListClients", map[string]string{"InstanceId": "inst-a"}))
		}, 403, "PermissionCheckFailed"},
		{"broker key calls KickClient", func() *http.Request {
			return reqFor(hs, post, hs.signed(post, brokerID, brokerSecret, "KickClient", map[string]string{"InstanceId": "inst-a", "ClientId": "c"}))
		}, 403, "PermissionCheckFailed"},
		{"broker key reports out of sequence", func() *http.Request {
			return reqFor(hs, post, hs.signed(post, brokerID, brokerSecret, "ReportClients", map[string]string{"InstanceId": "inst-a", "BrokerId": "b", "Seq": "x"}))
		}, 400, "InvalidParameter.Seq"},
		{"report with a bad Gone", func() *http.Request {
			return reqFor(hs, post, hs.signed(post, brokerID, brokerSecret, "ReportClients", map[string]string{"InstanceId": "inst-a", "BrokerId": "b", "Seq": "1", "Full": "true", "Gone": "[-1]"}))
		}, 400, "InvalidParameter.Gone"},
		{"limited key lists clients of its forbidden instance", func() *http.Request {
			return reqFor(hs, post, hs.signed(post, limitedID, limitedSecret, "ListClients", map[string]string{"InstanceId": "inst-a"}))
		}, 400, "InstancePermissionCheckFailed"},
		{"key limited to another instance", func() *http.Request {
			return reqFor(hs, post, hs.signed(post, limitedID, limitedSecret, "ApplyToken", applyParams(hs, nil)))
		}, 400, "InstancePermissionCheckFailed"},
		{"instance not served", func() *http.Request { return apply(map[string]string{"InstanceId": "inst-z"}) }, 400, "InstancePermissionCheckFailed"},
		{"limited key revokes on its forbidden instance", func() *http.Request {
			return reqFor(hs, post, hs.signed(post, limitedID, limitedSecret, "RevokeToken", map[string]string{"InstanceId": "inst-a", "Token": tok}))
		}, 400, "InstancePermissionCheckFailed"},
		{"QueryToken on an unserved instance", func() *http.Request {
			return reqFor(hs, post, admin("QueryToken", map[string]string{"InstanceId": "inst-z", "Token": tok}))
		}, 400, "InstancePermissionCheckFailed"},

		// ApplyToken parameters (SPEC §2.2).
		{"missing InstanceId", func() *http.Request { return apply(map[string]string{"InstanceId": ""}) }, 400, "InvalidParameter.InstanceId"},
		{"missing Resources", func() *http.Request { return apply(map[string]string{"Resources": ""}) }, 400, "InvalidParameter.Resources"},
		{"missing Actions", func() *http.Request { return apply(map[string]string{"Actions": ""}) }, 400, "InvalidParameter.Actions"},
		{"missing ExpireTime", func() *http.Request { return apply(map[string]string{"ExpireTime": ""}) }, 400, "InvalidParameter.ExpireTime"},
		{"ExpireTime not a number", func() *http.Request { return apply(map[string]string{"ExpireTime": "tomorrow"}) }, 400, "InvalidParameter.ExpireTime"},
		{"ExpireTime negative", func() *http.Request { return apply(map[string]string{"ExpireTime": "-5"}) }, 400, "InvalidParameter.ExpireTime"},
		{"ExpireTime with plus sign", func() *http.Request { return apply(map[string]string{"ExpireTime": "+" + ms(time.Hour)}) }, 400, "InvalidParameter.ExpireTime"},
		{"ExpireTime in exponent form", func() *http.Request { return apply(map[string]string{"ExpireTime": "1.9e12"}) }, 400, "InvalidParameter.ExpireTime"},
		{"ExpireTime in seconds", func() *http.Request {
			return apply(map[string]string{"ExpireTime": fmt.Sprint(hs.clock.Now().Add(time.Hour).Unix())})
		}, 400, "InvalidParameter.ExpireTime"},
		{"ExpireTime overflows", func() *http.Request { return apply(map[string]string{"ExpireTime": "99999999999999999999999"}) }, 400, "InvalidParameter.ExpireTime"},
		{"ExpireTime 59 s ahead", func() *http.Request { return apply(map[string]string{"ExpireTime": ms(59 * time.Second)}) }, 400, "InvalidParameter.ExpireTime"},
		{"ExpireTime in the past", func() *http.Request { return apply(map[string]string{"ExpireTime": ms(-time.Hour)}) }, 400, "InvalidParameter.ExpireTime"},
		{"Actions RW", func() *http.Request { return apply(map[string]string{"Actions": "RW"}) }, 400, "InvalidParameter.Actions"},
		{"Actions unknown letter", func() *http.Request { return apply(map[string]string{"Actions": "R,X"}) }, 400, "InvalidParameter.Actions"},
		{"Actions repeated", func() *http.Request { return apply(map[string]string{"Actions": "R,R"}) }, 400, "InvalidParameter.Actions"},
		{"Actions lower case", func() *http.Request { return apply(map[string]string{"Actions": "r"}) }, 400, "InvalidParameter.Actions"},
		{"Actions with space", func() *http.Request { return apply(map[string]string{"Actions": "R, W"}) }, 400, "InvalidParameter.Actions"},
		{"101 resources", func() *http.Request { return apply(map[string]string{"Resources": many(101)}) }, 400, "InvalidParameter.Resources"},
		{"10,000 resources", func() *http.Request { return apply(map[string]string{"Resources": many(10000)}) }, 400, "InvalidParameter.Resources"},
		{"# not last", func() *http.Request { return apply(map[string]string{"Resources": "a/#/b"}) }, 400, "InvalidParameter.Resources"},
		{"# inside a level", func() *http.Request { return apply(map[string]string{"Resources": "a/b#"}) }, 400, "InvalidParameter.Resources"},
		{"+ inside a level", func() *http.Request { return apply(map[string]string{"Resources": "a/+b"}) }, 400, "InvalidParameter.Resources"},
		{"empty resource between commas", func() *http.Request { return apply(map[string]string{"Resources": "a,,b"}) }, 400, "InvalidParameter.Resources"},
		{"trailing comma", func() *http.Request { return apply(map[string]string{"Resources": "a/b,"}) }, 400, "InvalidParameter.Resources"},
		{"NUL in resource", func() *http.Request { return apply(map[string]string{"Resources": "a/\x00"}) }, 400, "InvalidParameter.Resources"},
		{"resource over 65535 bytes", func() *http.Request { return apply(map[string]string{"Resources": strings.Repeat("x", 65536)}) }, 400, "InvalidParameter.Resources"},
		{"Name too long", func() *http.Request { return apply(map[string]string{"Name": strings.Repeat("n", 65)}) }, 400, "InvalidParameter.Name"},
		{"Name with control character", func() *http.Request { return apply(map[string]string{"Name": "a\tb"}) }, 400, "InvalidParameter.Name"},

		// QueryToken, RevokeToken, ListTokens.
		{"QueryToken without Token", func() *http.Request {
			return reqFor(hs, post, admin("QueryToken", map[string]string{"InstanceId": "inst-a"}))
		}, 400, "InvalidParameter.Token"},
		{"QueryToken without InstanceId", func() *http.Request {
			return reqFor(hs, post, admin("QueryToken", map[string]string{"Token": tok}))
		}, 400, "InvalidParameter.InstanceId"},
		{"RevokeToken without Token", func() *http.Request {
			return reqFor(hs, post, admin("RevokeToken", map[string]string{"InstanceId": "inst-a"}))
		}, 400, "InvalidParameter.Token"},
		{"RevokeToken of a forged token", func() *http.Request {
			return reqFor(hs, post, admin("RevokeToken", map[string]string{"InstanceId": "inst-a", "Token": tok[:30] + "AAAA" + tok[34:]}))
		}, 400, "InvalidParameter.Token"},
		{"RevokeToken of another instance's token", func() *http.Request {
			return reqFor(hs, post, admin("RevokeToken", map[string]string{"InstanceId": "inst-b", "Token": tok}))
		}, 400, "InvalidParameter.Token"},
		{"ListTokens PageSize 0", func() *http.Request {
			return reqFor(hs, post, admin("ListTokens", map[string]string{"InstanceId": "inst-a", "PageSize": "0"}))
		}, 400, "InvalidParameter.PageSize"},
		{"ListTokens PageSize 101", func() *http.Request {
			return reqFor(hs, post, admin("ListTokens", map[string]string{"InstanceId": "inst-a", "PageSize": "101"}))
		}, 400, "InvalidParameter.PageSize"},
		{"ListTokens PageSize not a number", func() *http.Request {
			return reqFor(hs, post, admin("ListTokens", map[string]string{"InstanceId": "inst-a", "PageSize": "ten"}))
		}, 400, "InvalidParameter.PageSize"},
		{"ListTokens bad NextToken", func() *http.Request {
			return reqFor(hs, post, admin("ListTokens", map[string]string{"InstanceId": "inst-a", "NextToken": "not-a-cursor"}))
		}, 400, "InvalidParameter.NextToken"},
	}
	if len(cases) < 40 {
		t.Fatalf("only %d bad-input cases", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := hs.snapshot()
			status, body := hs.send(tc.req())
			assertError(t, status, body, tc.status, tc.code)
			if msg := body["Message"].(string); msg == "" {
				t.Fatal("empty Message")
			}
			if after := hs.snapshot(); after != before {
				t.Fatalf("a rejected request changed the store:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
	// The token the table tried to revoke in several wrong ways is still valid.
	status, body := hs.call("QueryToken", map[string]string{"InstanceId": "inst-a", "Token": tok})
	if status != 200 || body["TokenStatus"] != true {
		t.Fatalf("token after the bad-input table: %d %v", status, body)
	}
}

// The positive control of TestBadInput: its baseline request does store a token.
func TestBadInputBaselineIsAccepted(t *testing.T) {
	hs := newHarness(t)
	before := hs.snapshot()
	status, body := hs.do(http.MethodPost, hs.signed(http.MethodPost, adminID, adminSecret, "ApplyToken", applyParams(hs, nil)))
	if status != 200 || body["Token"] == nil {
		t.Fatalf("baseline ApplyToken: %d %v", status, body)
	}
	if hs.snapshot() == before {
		t.Fatal("baseline ApplyToken stored nothing")
	}
}

func TestErrorMessagesSayWhatIsWrong(t *testing.T) {
	hs := newHarness(t)
	for _, tc := range []struct {
		overrides map[string]string
		want      string
	}{
		{map[string]string{"Resources": "ok/#,a/#/b"}, `topic filter 2 ("a/#/b") uses '#' other than as the whole last level`},
		{map[string]string{"Actions": "R,X"}, `item 2 ("X") is not R or W`},
		{map[string]string{"ExpireTime": "soon"}, `"soon" is not a Unix time in milliseconds`},
		{map[string]string{"Resources": strings.Repeat("a,", 100) + "b"}, "101 topic filters given; at most 100"},
		{map[string]string{"ExpireTime": fmt.Sprint(hs.clock.Now().Add(30 * time.Second).UnixMilli())}, "must be at least 1m0s in the future"},
	} {
		_, body := hs.call("ApplyToken", applyParams(hs, tc.overrides))
		if msg, _ := body["Message"].(string); !strings.Contains(msg, tc.want) {
			t.Errorf("%v: message %q does not contain %q", tc.overrides, msg, tc.want)
		}
	}
}
