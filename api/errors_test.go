package api

import (
	"net/http"
	"testing"
)

// Each Code has one HTTP status, from one table (SPEC §2.1, §2.2).
func TestStatusOfCodes(t *testing.T) {
	for code, want := range map[string]int{
		CodeAccessKeyNotFound:                http.StatusNotFound,
		CodeSignatureDoesNotMatch:            http.StatusBadRequest,
		CodeTimestampExpired:                 http.StatusBadRequest,
		CodeNonceUsed:                        http.StatusBadRequest,
		CodeMissingParameter + ".Timestamp":  http.StatusBadRequest,
		CodeInvalidParameter + ".ExpireTime": http.StatusBadRequest,
		CodeInvalidParameter:                 http.StatusBadRequest,
		CodePermission:                       http.StatusForbidden,
		CodeInstancePermission:               http.StatusBadRequest,
		CodeAPINotSupported:                  http.StatusNotFound,
		CodeApplyTokenOverFlow:               http.StatusBadRequest,
		CodeQueryTokenOverFlow:               http.StatusBadRequest,
		CodeSystemOverFlow:                   http.StatusBadRequest,
		CodeInternal:                         http.StatusInternalServerError,
		CodeUnsupportedMethod:                http.StatusMethodNotAllowed,
		CodeRequestTooLarge:                  http.StatusRequestEntityTooLarge,
		"SomethingNew":                       http.StatusInternalServerError,
		"SignatureNonceUsed.X":               http.StatusInternalServerError, // only parameter codes take a suffix
	} {
		if got := statusOf(code); got != want {
			t.Errorf("statusOf(%q) = %d, want %d", code, got, want)
		}
	}
}
