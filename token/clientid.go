package token

import (
	"slices"
	"strings"
	"unicode/utf8"
)

// Limits of a token's client binding (ApplyToken ClientId, SPEC §2.2).
const (
	// MaxClientIDs is the most client IDs (or prefixes) one token may name.
	MaxClientIDs = 100
	// MaxClientIDLength is the longest client ID MQTT can carry [MQTT-1.5.4].
	MaxClientIDLength = 65535
)

// PlaceholderClientID is the resource level that stands for the connecting
// client's ID (SPEC §3.7): "devices/${clientid}/#".
const PlaceholderClientID = "${clientid}"

// NormalizeClientIDs validates a token's client binding (1 to MaxClientIDs
// entries, each a non-empty client ID, or a prefix ending in one '*') and
// returns it sorted and de-duplicated. The error is a *ParamError for
// "ClientId" that says which entry is wrong and why.
func NormalizeClientIDs(ids []string) ([]string, error) {
	switch {
	case len(ids) == 0:
		return nil, paramErrorf("ClientId", "no client ID given; give 1 to %d, comma-separated", MaxClientIDs)
	case len(ids) > MaxClientIDs:
		return nil, paramErrorf("ClientId", "%d client IDs given; at most %d are allowed", len(ids), MaxClientIDs)
	}
	for i, id := range ids {
		why := clientIDProblem(id)
		if why == "" && strings.IndexByte(id, ',') >= 0 {
			why = "contains a comma (the list separator)"
		}
		if star := strings.IndexByte(id, '*'); why == "" && star >= 0 && star != len(id)-1 {
			why = "has a '*' other than as its last character (a prefix ends in one '*')"
		}
		if why != "" {
			return nil, paramErrorf("ClientId", "client ID %d (%s) %s", i+1, quoteShort(id), why)
		}
	}
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out), nil
}

// ValidateClientID checks one exact MQTT client ID (KickClient,
// ListClients): a *ParamError for "ClientId" if it is not one.
func ValidateClientID(id string) error {
	if why := clientIDProblem(id); why != "" {
		return paramErrorf("ClientId", "%s %s", quoteShort(id), why)
	}
	return nil
}

// clientIDProblem says what makes id no MQTT client ID, or "".
func clientIDProblem(id string) string {
	switch {
	case id == "":
		return "is empty"
	case len(id) > MaxClientIDLength:
		return "is longer than 65535 bytes"
	case !utf8.ValidString(id):
		return "is not valid UTF-8"
	case strings.IndexByte(id, 0) >= 0:
		return "contains the NUL character"
	}
	return ""
}

// ClientAllowed reports whether a token bound to ids may be used by a
// connection with client ID clientID: an empty binding allows every client
// ID; an entry ending in '*' allows every client ID it is a prefix of
// (without the '*'); any other entry allows exactly itself.
func ClientAllowed(ids []string, clientID string) bool {
	if len(ids) == 0 {
		return true
	}
	for _, id := range ids {
		if prefix, ok := strings.CutSuffix(id, "*"); ok {
			if strings.HasPrefix(clientID, prefix) {
				return true
			}
		} else if id == clientID {
			return true
		}
	}
	return false
}
