package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/tokenmq/tokenmq/token"
)

// Error codes of the Alibaba envelope (SPEC §2.1, §2.2).
const (
	CodeMissingParameter      = "MissingParameter" // + "." + parameter name
	CodeInvalidParameter      = "InvalidParameter" // + "." + parameter name
	CodeAccessKeyNotFound     = "InvalidAccessKeyId.NotFound"
	CodeSignatureDoesNotMatch = "SignatureDoesNotMatch"
	CodeTimestampExpired      = "InvalidTimeStamp.Expired"
	CodeTimestampFormat       = "InvalidTimeStamp.Format"
	CodeNonceUsed             = "SignatureNonceUsed"
	CodePermission            = "PermissionCheckFailed"
	CodeInstancePermission    = "InstancePermissionCheckFailed"
	CodeAPINotSupported       = "ApiNotSupport"
	CodeApplyTokenOverFlow    = "ApplyTokenOverFlow"
	CodeQueryTokenOverFlow    = "QueryTokenOverFlow"
	CodeSystemOverFlow        = "SystemOverFlow"
	CodeInternal              = "InternalError"
	CodeInvalidVersion        = "InvalidVersion"
	CodeUnsupportedMethod     = "UnsupportedHTTPMethod"
	CodeRequestTooLarge       = "RequestEntityTooLarge"
	CodeNotFound              = "NotFound"
)

// Error is an API error: the HTTP status and the Code and Message of the
// JSON error body. Client returns it for every error response.
type Error struct {
	Status    int
	Code      string
	Message   string
	RequestID string // set by Client from the response
}

func (e *Error) Error() string {
	if e.RequestID != "" {
		return fmt.Sprintf("%s (HTTP %d): %s [request %s]", e.Code, e.Status, e.Message, e.RequestID)
	}
	return fmt.Sprintf("%s (HTTP %d): %s", e.Code, e.Status, e.Message)
}

func newError(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func errMissingSignatureParam(name string) *Error {
	return newError(http.StatusBadRequest, CodeMissingParameter+"."+name, "%s is mandatory for this action.", name)
}

func errMissingParam(name string) *Error {
	return newError(http.StatusBadRequest, CodeInvalidParameter+"."+name, "%s is mandatory for this action.", name)
}

func errInvalidParam(name, format string, args ...any) *Error {
	return newError(http.StatusBadRequest, CodeInvalidParameter+"."+name, "%s %s", name, fmt.Sprintf(format, args...))
}

func errInstancePermission(instance string) *Error {
	return newError(http.StatusBadRequest, CodeInstancePermission,
		"An error occurred while validating the permissions of the instance %q: this access key may not use it, or this service does not serve it.", instance)
}

var errInternal = &Error{Status: http.StatusInternalServerError, Code: CodeInternal,
	Message: "An error occurred while processing your request. Try again later."}

// errorFor maps an error from the token service to the API error the caller
// sees. It is the one place where service errors become codes.
func errorFor(err error) *Error {
	var pe *token.ParamError
	switch {
	case errors.As(err, &pe):
		return errInvalidParam(pe.Param, "%s", pe.Msg)
	case errors.Is(err, token.ErrInstanceNotServed):
		return newError(http.StatusBadRequest, CodeInstancePermission,
			"An error occurred while validating the permissions of the instance: this service does not serve it.")
	}
	return errInternal
}

// UCloud envelope return codes (SPEC §2.3). The 8xxx codes are tokenmq's.
const (
	RetOK              = 0
	RetBadSignature    = 171  // signature does not verify
	RetUnknownKey      = 172  // PublicKey is not a known access key
	RetBadParameter    = 230  // a parameter is missing or malformed
	RetTokenNotFound   = 8001 // no token with this TokenId in this ServiceId
	RetPermission      = 8002 // the key's role may not call this action
	RetInstance        = 8003 // the key may not use this ServiceId, or it is not served
	RetRateLimited     = 8004 // the key's rate limit is exceeded
	RetInternal        = 8500 // internal error; try again
	RetRequestTooLarge = 8413 // request body too large or malformed request
)

// UCloudError is an error of the UCloud envelope (HTTP 200, non-zero RetCode).
type UCloudError struct {
	RetCode int
	Message string
}

func (e *UCloudError) Error() string { return fmt.Sprintf("RetCode %d: %s", e.RetCode, e.Message) }
