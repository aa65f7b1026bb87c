package api

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// BenchmarkQueryTokenHandler measures one signed QueryToken through the
// HTTP handler: parameter parsing, timestamp and nonce checks, signature
// verification, the token's MAC, a bbolt read and the JSON answer. Requests
// are signed before the timer starts (each needs its own nonce).
func BenchmarkQueryTokenHandler(b *testing.B) {
	for _, method := range []string{SignatureHMACSHA1, SignatureHMACSHA256} {
		b.Run(method, func(b *testing.B) {
			hs := newHarness(b, withNonceCapacity(1<<26))
			tok := hs.apply("inst-a", strings.Repeat("devices/+/telemetry,", 99)+"last/#", "R,W", time.Hour)
			bodies := make([]string, b.N)
			for i := range bodies {
				ps := map[string]string{"InstanceId": "inst-a", "Token": tok, "SignatureMethod": method}
				form := url.Values{}
				for k, v := range hs.signed(http.MethodPost, brokerID, brokerSecret, "QueryToken", ps) {
					form.Set(k, v)
				}
				bodies[i] = form.Encode()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(bodies[i]))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				rec := httptest.NewRecorder()
				hs.h.ServeHTTP(rec, req)
				if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"TokenStatus":true`) {
					b.Fatalf("%d %s", rec.Code, rec.Body)
				}
			}
		})
	}
}

// BenchmarkStringToSign measures canonicalisation of a typical QueryToken.
func BenchmarkStringToSign(b *testing.B) {
	ps := params{{"Action", "QueryToken"}, {"Format", "JSON"}, {"Version", APIVersion}, {"AccessKeyId", "AKBROKER000001"},
		{"SignatureMethod", "HMAC-SHA1"}, {"SignatureVersion", "1.0"}, {"SignatureType", ""},
		{"SignatureNonce", "3f1c1e4e-54f5-4c8a-8f1c-2b7d1f0e6a55"}, {"Timestamp", "2026-11-22T10:00:00Z"},
		{"RegionId", "cn-hangzhou"}, {"InstanceId", "mqtt-local"}, {"Token", strings.Repeat("A", 82)}}
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		buf = appendStringToSign(buf[:0], http.MethodPost, ps)
	}
}
