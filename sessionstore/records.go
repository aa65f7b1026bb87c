package sessionstore

import "github.com/tokenmq/tokenmq/token"

// Session is a persistent MQTT session: the client, the connect properties
// a resumed session keeps, and the tokens its rights came from (their
// grants, never the tokens themselves).
type Session struct {
	ClientID string `json:"id"`
	Listener string `json:"listener,omitempty"`
	Protocol byte   `json:"protocol"`
	// ExpiryInterval is MQTT 5's Session Expiry Interval in seconds
	// (ExpiryFlag set); MQTT 3.1.1 sessions take the broker's maximum.
	ExpiryInterval     uint32 `json:"expiry,omitempty"`
	ExpiryFlag         bool   `json:"expiry_flag,omitempty"`
	ReceiveMaximum     uint16 `json:"receive_max,omitempty"`
	TopicAliasMaximum  uint16 `json:"alias_max,omitempty"`
	MaximumPacketSize  uint32 `json:"packet_max,omitempty"`
	RequestProblemInfo byte   `json:"problem_info,omitempty"`
	ProblemInfoFlag    bool   `json:"problem_info_flag,omitempty"`

	// Form and AccessKeyID are the credential form the session connected
	// with (renewals after a restart follow the same rules).
	Form        byte   `json:"form"`
	AccessKeyID string `json:"access_key,omitempty"`
	Held        []Held `json:"held"`
	// Disconnected is when the client went offline (Unix seconds), 0 while
	// connected.
	Disconnected int64 `json:"disconnected,omitempty"`
	// Connected is when the connection that last used the session started
	// (Unix ms): a kick (KickClient) made after it discards the session.
	Connected int64 `json:"connected,omitempty"`
}

// Held is a token grant a session relies on, as the type it was given.
type Held struct {
	Grant token.Grant   `json:"grant"`
	Type  token.Actions `json:"type"`
}

// Subscription is one of a session's subscriptions.
type Subscription struct {
	ClientID          string `json:"client"`
	Filter            string `json:"filter"`
	QoS               byte   `json:"qos"`
	NoLocal           bool   `json:"no_local,omitempty"`
	RetainAsPublished bool   `json:"rap,omitempty"`
	RetainHandling    byte   `json:"rh,omitempty"`
	Identifier        int    `json:"sub_id,omitempty"`
}

// Message states.
const (
	// StatePublish: the PUBLISH is queued or sent and not acknowledged.
	StatePublish byte = iota
	// StatePubrel: a QoS 2 PUBLISH the client has received (PUBREC); PUBREL is due.
	StatePubrel
)

// Message is a PUBLISH queued or in flight for a session (ClientID, Seq),
// or a retained message (Topic).
type Message struct {
	ClientID string
	Seq      uint64 // order of the session's messages; unique per store
	PacketID uint16 // 0 until one is assigned
	State    byte
	QoS      byte
	Retain   bool
	Topic    string
	Origin   string // the publisher's client ID
	Payload  []byte
	Created  int64 // Unix seconds
	Expiry   int64 // Unix seconds; 0: none
	// Properties are the MQTT 5 message properties, encoded by the caller
	// (opaque here).
	Properties []byte
}
