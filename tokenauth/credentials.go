package tokenauth

import (
	"bytes"
	"errors"
	"strings"

	"github.com/tokenmq/tokenmq/token"
)

// Form is the shape of a client's CONNECT credentials.
type Form uint8

// Credential forms (SPEC §3.1).
const (
	// FormApsara is ApsaraMQ's: username "Token|<AccessKeyId>|<InstanceId>",
	// password "<type>|<token>" pairs joined by '|'.
	FormApsara Form = iota + 1
	// FormPlain is any other username with a bare token as password.
	FormPlain
)

// MaxTokenLength bounds a token string (SPEC §2.2); longer ones are
// malformed without a lookup.
const MaxTokenLength = 128

// Credential is one token of a CONNECT and the type it is given as. In the
// plain form Type is 0: the token's own Actions apply.
type Credential struct {
	Type  token.Actions
	Token string
}

// Credentials are a CONNECT's parsed username and password.
type Credentials struct {
	Form        Form
	AccessKeyID string // FormApsara
	InstanceID  string // FormApsara
	Tokens      []Credential
}

// ParseCredentials parses a CONNECT's username and password. allowPlain
// turns the plain form on. Every error is ErrBadCredentials (wrapped).
func ParseCredentials(username, password []byte, hasPassword, allowPlain bool) (Credentials, error) {
	if !hasPassword || len(password) == 0 {
		return Credentials{}, errors.Join(ErrBadCredentials, errors.New("no password"))
	}
	pw := string(password)
	if bytes.HasPrefix(username, []byte("Token|")) {
		ak, inst, _ := strings.Cut(string(username[len("Token|"):]), "|")
		if ak == "" || inst == "" || strings.IndexByte(inst, '|') >= 0 {
			return Credentials{}, errors.Join(ErrBadCredentials, errors.New(`username is not "Token|AccessKeyId|InstanceId"`))
		}
		creds := Credentials{Form: FormApsara, AccessKeyID: ak, InstanceID: inst}
		bars := strings.Count(pw, "|")
		if bars%2 != 1 || bars > 5 { // one, two or three "<type>|<token>" pairs
			return Credentials{}, errors.Join(ErrBadCredentials, errors.New(`password is not "<type>|<token>" pairs`))
		}
		creds.Tokens = make([]Credential, 0, (bars+1)/2)
		var seen token.Actions
		seenRW := false
		for rest := pw; rest != ""; {
			var kind, tok string
			kind, rest, _ = strings.Cut(rest, "|")
			tok, rest, _ = strings.Cut(rest, "|")
			typ, ok := ParseType(kind)
			switch {
			case !ok:
				return Credentials{}, errors.Join(ErrBadCredentials, errors.New("token type is not R, W or RW"))
			case typ == token.ActionReadWrite:
				if seenRW {
					return Credentials{}, errors.Join(ErrBadCredentials, errors.New("type RW given twice"))
				}
				seenRW = true
			default:
				if seen&typ != 0 {
					return Credentials{}, errors.Join(ErrBadCredentials, errors.New("a token type is given twice"))
				}
				seen |= typ
			}
			if err := checkTokenShape(tok); err != nil {
				return Credentials{}, err
			}
			creds.Tokens = append(creds.Tokens, Credential{Type: typ, Token: tok})
		}
		return creds, nil
	}
	if !allowPlain {
		return Credentials{}, errors.Join(ErrBadCredentials, errors.New("plain-token credentials are turned off"))
	}
	if err := checkTokenShape(pw); err != nil {
		return Credentials{}, err
	}
	return Credentials{Form: FormPlain, Tokens: []Credential{{Token: pw}}}, nil
}

// checkTokenShape rejects what cannot be a token without any lookup.
func checkTokenShape(t string) error {
	if t == "" || len(t) > MaxTokenLength {
		return errors.Join(ErrBadCredentials, errors.New("token empty or longer than 128 characters"))
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return errors.Join(ErrBadCredentials, errors.New("token has a character outside base64url"))
		}
	}
	return nil
}

// TypeName renders a token type as the credentials and notices do: R, W or RW.
func TypeName(a token.Actions) string {
	switch a {
	case token.ActionRead:
		return "R"
	case token.ActionWrite:
		return "W"
	case token.ActionReadWrite:
		return "RW"
	}
	return ""
}

// ParseType parses a type as the credentials and renewals give it: R, W or RW.
func ParseType(s string) (token.Actions, bool) {
	switch s {
	case "R":
		return token.ActionRead, true
	case "W":
		return token.ActionWrite, true
	case "RW":
		return token.ActionReadWrite, true
	}
	return 0, false
}
