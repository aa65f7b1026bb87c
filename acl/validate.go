package acl

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxTopicLength is the longest topic name or filter MQTT can carry: its
// length is a two-byte prefix [MQTT-1.5.3].
const MaxTopicLength = 65535

// Errors returned by ValidateFilter and ValidateTopic. They are wrapped with
// the position of the offending character where that helps.
var (
	// ErrEmpty means the topic or filter has no characters [MQTT-4.7.3-1].
	ErrEmpty = errors.New("is empty")
	// ErrTooLong means the topic or filter is longer than 65535 bytes.
	ErrTooLong = errors.New("is longer than 65535 bytes")
	// ErrInvalidUTF8 means the topic or filter is not well-formed UTF-8 [MQTT-1.5.3-1].
	ErrInvalidUTF8 = errors.New("is not valid UTF-8")
	// ErrNUL means the topic or filter contains U+0000 [MQTT-1.5.3-2].
	ErrNUL = errors.New("contains the NUL character")
	// ErrMultiLevelWildcard means '#' is not alone in the last level [MQTT-4.7.1-2].
	ErrMultiLevelWildcard = errors.New("uses '#' other than as the whole last level")
	// ErrSingleLevelWildcard means '+' does not fill a whole level [MQTT-4.7.1-3].
	ErrSingleLevelWildcard = errors.New("uses '+' other than as a whole level")
	// ErrWildcardInTopic means a topic name (not a filter) contains '+' or '#' [MQTT-4.7.1-1].
	ErrWildcardInTopic = errors.New("contains a wildcard, which topic names may not")
)

// ValidateFilter reports whether f is a valid MQTT topic filter: non-empty,
// at most 65535 bytes, valid UTF-8 without NUL, '#' only as the whole last
// level and '+' only as a whole level. Empty levels ("a//b", "/a") are valid,
// as MQTT says.
func ValidateFilter(f string) error {
	if err := validateString(f); err != nil {
		return err
	}
	levelStart := 0
	for i := 0; i < len(f); i++ {
		switch f[i] {
		case '/':
			levelStart = i + 1
		case '#':
			if i != levelStart || i != len(f)-1 {
				return fmt.Errorf("%w (at byte %d)", ErrMultiLevelWildcard, i)
			}
		case '+':
			if i != levelStart || (i+1 < len(f) && f[i+1] != '/') {
				return fmt.Errorf("%w (at byte %d)", ErrSingleLevelWildcard, i)
			}
		}
	}
	return nil
}

// ValidateTopic reports whether t is a valid MQTT topic name: a filter
// without wildcards.
func ValidateTopic(t string) error {
	if err := validateString(t); err != nil {
		return err
	}
	if i := strings.IndexAny(t, "+#"); i >= 0 {
		return fmt.Errorf("%w (at byte %d)", ErrWildcardInTopic, i)
	}
	return nil
}

func validateString(s string) error {
	switch {
	case s == "":
		return ErrEmpty
	case len(s) > MaxTopicLength:
		return ErrTooLong
	case !utf8.ValidString(s):
		return ErrInvalidUTF8
	}
	if i := strings.IndexByte(s, 0); i >= 0 {
		return fmt.Errorf("%w (at byte %d)", ErrNUL, i)
	}
	return nil
}
