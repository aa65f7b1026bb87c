package acl

import "errors"

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
