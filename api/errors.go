package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

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

// statuses is the one table from a Code to its HTTP status. A Code with a
// parameter part (InvalidParameter.<Name>, MissingParameter.<Name>) has
// its prefix's status. SystemOverFlow is 400 wherever it is given (the
// "other actions" rate limit, and a key's share of the replay cache
// exhausted): it says the caller sent too much, like ApplyTokenOverFlow
// and QueryTokenOverFlow, as SPEC §2.2 states for the rate limit.
var statuses = map[string]int{
	CodeMissingParameter:      http.StatusBadRequest,
	CodeInvalidParameter:      http.StatusBadRequest,
	CodeAccessKeyNotFound:     http.StatusNotFound,
	CodeSignatureDoesNotMatch: http.StatusBadRequest,
	CodeTimestampExpired:      http.StatusBadRequest,
	CodeTimestampFormat:       http.StatusBadRequest,
	CodeNonceUsed:             http.StatusBadRequest,
	CodePermission:            http.StatusForbidden,
	CodeInstancePermission:    http.StatusBadRequest,
	CodeAPINotSupported:       http.StatusNotFound,
	CodeApplyTokenOverFlow:    http.StatusBadRequest,
	CodeQueryTokenOverFlow:    http.StatusBadRequest,
	CodeSystemOverFlow:        http.StatusBadRequest,
	CodeInternal:              http.StatusInternalServerError,
	CodeInvalidVersion:        http.StatusBadRequest,
	CodeUnsupportedMethod:     http.StatusMethodNotAllowed,
	CodeRequestTooLarge:       http.StatusRequestEntityTooLarge,
	CodeNotFound:              http.StatusNotFound,
}

// statusOf returns code's HTTP status from the table (500 for a code that
// is not in it, which a test rules out).
func statusOf(code string) int {
	if s, ok := statuses[code]; ok {
		return s
	}
	if prefix, _, ok := strings.Cut(code, "."); ok {
		if s, ok := statuses[prefix]; ok && (prefix == CodeInvalidParameter || prefix == CodeMissingParameter) {
			return s
		}
	}
	return http.StatusInternalServerError
}

// newError is the API error of code, with its status from the table.
func newError(code, format string, args ...any) *Error {
	return &Error{Status: statusOf(code), Code: code, Message: fmt.Sprintf(format, args...)}
}

func errMissingSignatureParam(name string) *Error {
	return newError(CodeMissingParameter+"."+name, "%s is mandatory for this action.", name)
}

func errMissingParam(name string) *Error {
	return newError(CodeInvalidParameter+"."+name, "%s is mandatory for this action.", name)
}

func errInvalidParam(name, format string, args ...any) *Error {
	return newError(CodeInvalidParameter+"."+name, "%s %s", name, fmt.Sprintf(format, args...))
}

func errInstancePermission(instance string) *Error {
	return newError(CodeInstancePermission,
		"An error occurred while validating the permissions of the instance %q: this access key may not use it, or this service does not serve it.", instance)
}

var errInternal = newError(CodeInternal, "An error occurred while processing your request. Try again later.")

// errorFor maps an error from the token service to the API error the caller
// sees. It is the one place where service errors become codes.
func errorFor(err error) *Error {
	var pe *token.ParamError
	switch {
	case errors.As(err, &pe):
		return errInvalidParam(pe.Param, "%s", pe.Msg)
	case errors.Is(err, token.ErrInstanceNotServed):
		return newError(CodeInstancePermission,
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
