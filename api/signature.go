package api

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"slices"
	"strings"
)

// Signature methods of Alibaba Cloud's RPC signature version 1.0.
const (
	SignatureHMACSHA1   = "HMAC-SHA1"
	SignatureHMACSHA256 = "HMAC-SHA256"
)

// appendStringToSign appends the StringToSign of Alibaba Cloud's RPC signature:
//
//	METHOD + "&%2F&" + percentEncode(canonicalQuery)
//
// where canonicalQuery is every parameter but Signature, sorted by name, as
// percentEncode(name)=percentEncode(value) joined with "&". Parameters with
// empty values take part.
func appendStringToSign(dst []byte, method string, ps params) []byte {
	var buf [24]param
	sorted := buf[:0]
	size := len(method) + 5
	for _, p := range ps {
		if p.name != "Signature" {
			sorted = append(sorted, p)
			size += 3*(len(p.name)+len(p.value)) + 6
		}
	}
	slices.SortFunc(sorted, func(a, b param) int { return strings.Compare(a.name, b.name) })
	dst = slices.Grow(dst, size)
	dst = append(dst, method...)
	dst = append(dst, "&%2F&"...)
	for i, p := range sorted {
		if i > 0 {
			dst = append(dst, "%26"...) // "&", encoded a second time
		}
		dst = appendPercentEncodeTwice(dst, p.name)
		dst = append(dst, "%3D"...) // "="
		dst = appendPercentEncodeTwice(dst, p.value)
	}
	return dst
}

// appendPercentEncodeTwice appends percentEncode(percentEncode(s)) in one
// pass, where percentEncode is RFC 3986's (A-Z a-z 0-9 - _ . ~ stay, every
// other byte becomes %XY in upper-case hex): an unreserved byte stays, any other becomes "%25XY" (the '%' of
// "%XY" encoded again; hex digits are unreserved).
func appendPercentEncodeTwice(dst []byte, s string) []byte {
	const hexDigits = "0123456789ABCDEF"
	start := 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; !unreserved[c] {
			dst = append(dst, s[start:i]...) // the run of unreserved bytes before it
			dst = append(dst, '%', '2', '5', hexDigits[c>>4], hexDigits[c&15])
			start = i + 1
		}
	}
	return append(dst, s[start:]...)
}

// unreserved are RFC 3986's unreserved bytes: A-Z a-z 0-9 - _ . ~
var unreserved = func() (t [256]bool) {
	for c := range 256 {
		t[c] = 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~'
	}
	return t
}()

// StringToSign returns the StringToSign of a request with the given method
// and parameters (exported for tests and debugging).
func StringToSign(method string, ps map[string]string) string {
	return string(appendStringToSign(nil, method, mapParams(ps)))
}

func mapParams(m map[string]string) params {
	ps := make(params, 0, len(m))
	for k, v := range m {
		ps = append(ps, param{k, v})
	}
	return ps
}

// newMAC returns the HMAC for a signature method, or nil if unknown.
func newMAC(method, secret string) hash.Hash {
	key := []byte(secret + "&")
	switch method {
	case SignatureHMACSHA1:
		return hmac.New(sha1.New, key)
	case SignatureHMACSHA256:
		return hmac.New(sha256.New, key)
	}
	return nil
}

// Sign returns the Signature of a request: Base64(HMAC(secret+"&", StringToSign)).
func Sign(httpMethod, sigMethod, secret string, ps map[string]string) string {
	return sign(httpMethod, sigMethod, secret, mapParams(ps))
}

func sign(httpMethod, sigMethod, secret string, ps params) string {
	mac := newMAC(sigMethod, secret)
	if mac == nil {
		return ""
	}
	mac.Write(appendStringToSign(nil, httpMethod, ps))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// verifySignature reports whether given is the signature of the request
// made with the key, and returns the StringToSign for the error message.
// The comparison is constant-time.
func verifySignature(httpMethod, sigMethod string, key *key, ps params, given string) (bool, string) {
	sg := key.signer(sigMethod)
	if sg == nil {
		return false, ""
	}
	defer key.putSigner(sigMethod, sg)
	sg.sts = appendStringToSign(sg.sts[:0], httpMethod, ps)
	sg.mac.Write(sg.sts)
	want := base64.StdEncoding.AppendEncode(sg.enc[:0], sg.mac.Sum(sg.sum[:0]))
	if subtle.ConstantTimeCompare(want, []byte(given)) == 1 {
		return true, ""
	}
	return false, string(sg.sts)
}

// base64Len is the length of a base64-encoded SHA-256 (the longest MAC).
const base64Len = (sha256.Size + 2) / 3 * 4

// ucloudSignature returns the UCloud API signature: the lower-case hex SHA1
// of every parameter but Signature, sorted by name, as name+value with no
// separators or escaping, followed by the private key.
func ucloudSignature(ps params, secret string) string {
	sorted := slices.Clone(ps)
	slices.SortFunc(sorted, func(a, b param) int { return strings.Compare(a.name, b.name) })
	h := sha1.New()
	for _, p := range sorted {
		if p.name == "Signature" {
			continue
		}
		h.Write([]byte(p.name))
		h.Write([]byte(p.value))
	}
	h.Write([]byte(secret))
	return hex.EncodeToString(h.Sum(nil))
}

// UCloudSignature is ucloudSignature for callers outside the package.
func UCloudSignature(ps map[string]string, secret string) string {
	return ucloudSignature(mapParams(ps), secret)
}

func verifyUCloudSignature(ps params, secret, given string) bool {
	return subtle.ConstantTimeCompare([]byte(ucloudSignature(ps, secret)), []byte(given)) == 1
}
