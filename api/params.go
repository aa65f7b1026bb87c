package api

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

// param is one request parameter.
type param struct{ name, value string }

// params are a request's parameters from its query string and form body.
// Each name appears once; a repeated name is an error, because two values
// would make the signature ambiguous.
type params []param

// get returns the value of name and whether it was given.
func (ps params) get(name string) (string, bool) {
	for _, p := range ps {
		if p.name == name {
			return p.value, true
		}
	}
	return "", false
}

// value returns the value of name, "" if absent.
func (ps params) value(name string) string {
	v, _ := ps.get(name)
	return v
}

// parseRequestParams reads the parameters of r: its query string and, for a
// form-encoded body, the body (at most maxBody bytes).
func parseRequestParams(r *http.Request, maxBody int64) (params, *Error) {
	ps := make(params, 0, 16)
	var err *Error
	if ps, err = appendParams(ps, r.URL.RawQuery); err != nil {
		return nil, err
	}
	if r.Body == nil || r.Method == http.MethodGet {
		return ps, nil
	}
	const form = "application/x-www-form-urlencoded"
	if ct := r.Header.Get("Content-Type"); ct != form { // the SDKs' exact value skips the parser
		if ct, _, _ = mime.ParseMediaType(ct); ct != form {
			return ps, nil
		}
	}
	body, rerr := readBody(r, maxBody)
	if rerr != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(rerr, &tooLarge) {
			return nil, newError(CodeRequestTooLarge,
				"The request body is larger than %d bytes.", maxBody)
		}
		return nil, newError(CodeInvalidParameter, "The request body could not be read.")
	}
	return appendParams(ps, string(body))
}

// readBody reads a request body of at most maxBody bytes: in one buffer of
// its declared length when it has one.
func readBody(r *http.Request, maxBody int64) ([]byte, error) {
	n := r.ContentLength
	if n < 0 || n > maxBody {
		return io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r.Body, body); err != nil {
		return nil, err
	}
	return body, nil
}

// appendParams parses a form-encoded string (a=1&b=2) onto ps.
func appendParams(ps params, s string) (params, *Error) {
	for s != "" {
		var kv string
		kv, s, _ = strings.Cut(s, "&")
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		name, err1 := url.QueryUnescape(k)
		value, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			return nil, newError(CodeInvalidParameter,
				"The parameters are not correctly URL-encoded near %q.", clip(kv, 40))
		}
		if !utf8.ValidString(name) {
			return nil, newError(CodeInvalidParameter, "A parameter name is not valid UTF-8.")
		}
		if name == "" {
			return nil, newError(CodeInvalidParameter, "A parameter has an empty name.")
		}
		if !utf8.ValidString(value) {
			return nil, errInvalidParam(name, "is not valid UTF-8.")
		}
		if _, dup := ps.get(name); dup {
			return nil, errInvalidParam(name, "is given more than once.")
		}
		ps = append(ps, param{name, value})
	}
	return ps, nil
}

// clip shortens s for an error message, on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
