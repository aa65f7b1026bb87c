package tokenauth

// ReasonCode is an MQTT 5 reason code (CONNACK [MQTT-3.2.2.2], DISCONNECT
// [MQTT-3.14.2.1]). The core decides in these; each adapter sends what its
// broker can of them (V3 for MQTT 3.1.1 clients).
type ReasonCode byte

// The reason codes the core decides.
const (
	ReasonNotAuthorized        ReasonCode = 0x87 // valid token, but not for this (wrong instance, key or type; a Will outside W)
	ReasonBadCredentials       ReasonCode = 0x86 // no, malformed, unknown, forged, expired or revoked token
	ReasonClientIDNotValid     ReasonCode = 0x85 // a valid token bound to other client IDs
	ReasonUnavailable          ReasonCode = 0x88 // the token service could not answer
	ReasonBadAuthMethod        ReasonCode = 0x8C // an MQTT 5 Authentication Method other than AuthMethod
	ReasonAdministrativeAction ReasonCode = 0x98 // disconnect: the token was revoked
	ReasonMaxConnectTime       ReasonCode = 0xA0 // disconnect: the token expired
)

// V3 maps a CONNACK reason to the MQTT 3.1.1 return code SPEC §3.1 gives:
// 0x86 → 0x04, 0x87 → 0x05, 0x85 → 0x02, anything else → 0x03 (server
// unavailable).
func (c ReasonCode) V3() byte {
	switch c {
	case ReasonBadCredentials:
		return 0x04
	case ReasonClientIDNotValid:
		return 0x02
	case ReasonNotAuthorized:
		return 0x05
	}
	return 0x03
}

// String renders the code as the logs do: 0x87.
func (c ReasonCode) String() string {
	const hex = "0123456789abcdef"
	return string([]byte{'0', 'x', hex[c>>4], hex[c&0xf]})
}
