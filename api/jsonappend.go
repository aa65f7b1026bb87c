package api

import (
	"strconv"
	"unicode/utf8"
)

// jsonAppender is a response that writes its own JSON, byte for byte what
// encoding/json would (TestAppendJSONMatchesEncodingJSON): QueryToken's,
// which every broker of a split deployment asks for each new token, skips
// the reflection.
type jsonAppender interface {
	appendJSON(b []byte) []byte
}

func (r QueryTokenResponse) appendJSON(b []byte) []byte {
	b = append(b, `{"RequestId":`...)
	b = appendJSONString(b, r.RequestId)
	b = append(b, `,"TokenStatus":`...)
	b = strconv.AppendBool(b, r.TokenStatus)
	for _, f := range [...]struct{ name, value string }{
		{`,"TokenId":`, r.TokenId}, {`,"Actions":`, r.Actions}, {`,"Resources":`, r.Resources},
	} {
		if f.value != "" {
			b = appendJSONString(append(b, f.name...), f.value)
		}
	}
	if r.ExpireTime != 0 {
		b = strconv.AppendInt(append(b, `,"ExpireTime":`...), r.ExpireTime, 10)
	}
	if r.AccessKeyId != "" {
		b = appendJSONString(append(b, `,"AccessKeyId":`...), r.AccessKeyId)
	}
	if r.ClientId != "" {
		b = appendJSONString(append(b, `,"ClientId":`...), r.ClientId)
	}
	return append(b, '}')
}

// appendJSONString appends s as encoding/json encodes a string: quoted,
// with <, > and & (HTML-safe), U+2028 and U+2029 escaped, and each invalid
// UTF-8 byte replaced by U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(append(b, s[start:i]...), `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(append(b, s[start:i]...), '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(append(b, s[start:]...), '"')
}
