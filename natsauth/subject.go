package natsauth

import (
	"fmt"
	"strings"
)

// Subject converts an MQTT topic name or filter to the NATS subject
// nats-server uses for it, level by level: an empty level becomes the
// token "/", a '.' inside a level becomes "//", and in a filter the
// levels '+' and '#' become '*' and '>'. Whitespace and DEL cannot be
// carried (nats-server refuses them); a wildcard in a topic name neither.
//
// This is nats-server's mqttToNATSSubjectConversion (server/mqtt.go), which
// works character by character; a test holds the two equal.
func Subject(mqtt string, filter bool) (string, error) {
	if mqtt == "" {
		return "", ErrUnconvertible
	}
	if i := strings.IndexAny(mqtt, " \t\n\r\f\x7f"); i >= 0 {
		return "", fmt.Errorf("%w: byte %d is whitespace or DEL", ErrUnconvertible, i)
	}
	if !filter && strings.ContainsAny(mqtt, "+#") {
		return "", fmt.Errorf("%w: a wildcard in a topic name", ErrUnconvertible)
	}
	levels := strings.Split(mqtt, "/")
	for i, l := range levels {
		levels[i] = natsToken(l)
	}
	return strings.Join(levels, "."), nil
}

// natsToken is the NATS token of one MQTT level.
func natsToken(level string) string {
	switch level {
	case "":
		return "/"
	case "+":
		return "*"
	case "#":
		return ">"
	}
	return strings.ReplaceAll(level, ".", "//")
}

// natsMatch reports whether the NATS subject pattern p (tokens, '*' one
// token, '>' one or more, last) matches the subject s, whose tokens are
// taken literally even where they are '*' or '>': how nats-server's
// sublist matches a permission against a subject, a subscription included.
func natsMatch(p, s []string) bool {
	for i, t := range p {
		if t == ">" {
			return len(s) > i
		}
		if i >= len(s) || (t != "*" && t != s[i]) {
			return false
		}
	}
	return len(s) == len(p)
}
