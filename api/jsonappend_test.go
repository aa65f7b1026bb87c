package api

import (
	"encoding/json"
	"testing"
)

// FuzzAppendJSONMatchesEncodingJSON: QueryToken's hand-written JSON is what
// encoding/json writes for the same response, for any field values
// (escapes, HTML characters, invalid UTF-8, empty and zero fields).
func FuzzAppendJSONMatchesEncodingJSON(f *testing.F) {
	f.Add("req-1", true, "tok", "R,W", "devices/+/up,a&b<c>", int64(1796169600000), "ak", "dev-1,dev-2")
	f.Add("", false, "", "", "", int64(0), "", "")
	f.Add("\"\\\b\f\n\r\t\x00\x1f\x7f", true, "\u2028\u2029é日本", "\xff\xfe", "a\xc3", int64(-1), "\u00e9\x80", "<>&")
	f.Fuzz(func(t *testing.T, req string, status bool, id, actions, resources string, expire int64, ak, clients string) {
		r := QueryTokenResponse{RequestId: req, TokenStatus: status, TokenId: id, Actions: actions, Resources: resources,
			ExpireTime: expire, AccessKeyId: ak, ClientId: clients}
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.appendJSON(nil); string(got) != string(want) {
			t.Fatalf("appendJSON\n got %s\nwant %s", got, want)
		}
	})
}
