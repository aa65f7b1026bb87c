package acl

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxTopicLength is the longest topic name or filter MQTT can carry: its
// length is a two-byte prefix [MQTT-1.5.3].
const MaxTopicLength = 65535

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
