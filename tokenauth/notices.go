package tokenauth

import (
	"fmt"
	"strconv"
	"time"

	"github.com/tokenmq/tokenmq/token"
)

// System topics of ApsaraMQ token authentication (SPEC §3.4).
const (
	TopicExpireNotice  = "$SYS/tokenExpireNotice"
	TopicInvalidNotice = "$SYS/tokenInvalidNotice"
	TopicUploadToken   = "$SYS/uploadToken"
)

// Codes of $SYS/tokenInvalidNotice.
const (
	InvalidCodeInvalid = 1 // the token (or a renewal) is invalid or forged
	InvalidCodeExpired = 2
	InvalidCodeRevoked = 3
)

// AuthMethod is the MQTT 5 Authentication Method of tokenmq tokens: in
// CONNECT the Authentication Data may carry the token instead of the
// password; an AUTH packet (reason 0x19) with it renews in session.
const AuthMethod = "tokenmq"

// Notice is a message the core sends one connection: a PUBLISH on Topic
// with Payload, and for MQTT 5 clients that use AuthMethod the same fields
// as user properties.
type Notice struct {
	Topic      string
	Payload    []byte
	Properties []Property
}

// Property is an MQTT 5 user property.
type Property struct{ Key, Value string }

// expireNotice is $SYS/tokenExpireNotice: {"expireTime":<ms>,"type":"R|W|RW"}.
func expireNotice(exp time.Time, typ token.Actions, withProperties bool) Notice {
	ms, name := exp.UnixMilli(), TypeName(typ)
	n := Notice{Topic: TopicExpireNotice, Payload: fmt.Appendf(nil, `{"expireTime":%d,"type":%q}`, ms, name)}
	if withProperties {
		n.Properties = []Property{{"expireTime", strconv.FormatInt(ms, 10)}, {"type", name}}
	}
	return n
}

// invalidNotice is $SYS/tokenInvalidNotice: {"code":N,"type":"R|W|RW"}.
func invalidNotice(cause Cause, typ token.Actions) Notice {
	return Notice{Topic: TopicInvalidNotice, Payload: fmt.Appendf(nil, `{"code":%d,"type":%q}`, cause.InvalidCode(), TypeName(typ))}
}
