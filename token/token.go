package token

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Actions is the set of rights a token grants.
type Actions uint8

// The two rights of ApsaraMQ tokens.
const (
	// ActionRead allows subscribing and receiving ("R").
	ActionRead Actions = 1 << iota
	// ActionWrite allows publishing ("W").
	ActionWrite
	// ActionReadWrite is both ("R,W").
	ActionReadWrite = ActionRead | ActionWrite
)

// ParseActions parses the ApplyToken Actions parameter: "R", "W", "R,W" or
// "W,R". Anything else, including "RW", lower case, spaces or a repeated
// letter, is an error.
func ParseActions(s string) (Actions, error) {
	if s == "" {
		return 0, paramErrorf("Actions", "is empty; use R, W or R,W")
	}
	var a Actions
	for i, part := range strings.Split(s, ",") {
		var bit Actions
		switch part {
		case "R":
			bit = ActionRead
		case "W":
			bit = ActionWrite
		default:
			return 0, paramErrorf("Actions", "item %d (%q) is not R or W; use R, W or R,W", i+1, part)
		}
		if a&bit != 0 {
			return 0, paramErrorf("Actions", "%s is given twice; use R, W or R,W", part)
		}
		a |= bit
	}
	return a, nil
}

// String renders a as the API does: "R", "W" or "R,W".
func (a Actions) String() string {
	switch a {
	case ActionRead:
		return "R"
	case ActionWrite:
		return "W"
	case ActionReadWrite:
		return "R,W"
	}
	return ""
}

// Covers reports whether a includes every right in b.
func (a Actions) Covers(b Actions) bool { return a&b == b }

// IDLen is the length of a token ID in bytes.
const IDLen = 16

// ID identifies a token. It is random, public (it is the TokenId of the API)
// and never reused; knowing it does not let anyone build the token.
type ID [IDLen]byte

// NewID returns a random ID.
func NewID() (ID, error) {
	var id ID
	if _, err := rand.Read(id[:]); err != nil {
		return id, fmt.Errorf("new token id: %w", err)
	}
	return id, nil
}

// String renders id as 32 lower-case hex digits.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// ParseID parses the 32-hex-digit form of an ID.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*IDLen {
		return id, paramErrorf("TokenId", "must be %d hex digits, got %d characters", 2*IDLen, len(s))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, paramErrorf("TokenId", "must be %d hex digits", 2*IDLen)
	}
	if strings.ToLower(s) != s {
		return id, paramErrorf("TokenId", "must be lower-case hex")
	}
	return id, nil
}

// Record is what the store keeps of a token. It never holds the token itself.
type Record struct {
	ID          ID
	KeyID       uint32 // server key that minted the token
	InstanceID  string
	AccessKeyID string // the access key that applied for it
	Name        string
	Actions     Actions
	Resources   []string // valid topic filters, sorted, de-duplicated
	ClientIDs   []string // client IDs (or "prefix*") that may use the token, sorted; none: any
	ExpireTime  time.Time
	CreateTime  time.Time
	ModifyTime  time.Time
	Revoked     bool
	RevokeTime  time.Time
	RevokeSeq   uint64 // position in the store's revocation log; 0 if not revoked
}

// Status reports the record's state at now: "revoked", "expired" or "valid".
func (r *Record) Status(now time.Time) string {
	switch {
	case r.Revoked:
		return "revoked"
	case !now.Before(r.ExpireTime):
		return "expired"
	}
	return "valid"
}

// Check returns nil if the record is valid at now, else ErrRevoked or ErrExpired.
func (r *Record) Check(now time.Time) error {
	switch {
	case r.Revoked:
		return ErrRevoked
	case !now.Before(r.ExpireTime):
		return ErrExpired
	}
	return nil
}

// Revocation is one entry of a store's revocation log: token ID was revoked;
// it would have expired at ExpireTime anyway. Seq increases with every
// revocation, so a follower can ask for everything after the last one it saw.
//
// The same log carries KickClient's kicks (SPEC §2.2): an entry with a
// ClientID is a kick of that client ID's connections and sessions at
// RevokeTime, and its ID is zero. It is kept until ExpireTime like a
// revocation, for brokers that start later and still hold a session of
// that client ID from before the kick.
type Revocation struct {
	Seq        uint64
	ID         ID
	InstanceID string
	RevokeTime time.Time
	ExpireTime time.Time
	ClientID   string // a kick when set
}

// IsKick reports whether the entry is a kick (KickClient) rather than a
// revocation.
func (r Revocation) IsKick() bool { return r.ClientID != "" }

// ms truncates t to whole milliseconds, the precision of the API.
func ms(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()) }
