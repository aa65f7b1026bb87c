package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/token"
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

// panicStore is a store whose reads panic (as a bug, or a storage engine
// on a page it cannot read, would).
type panicStore struct{ token.Store }

func (panicStore) Get(context.Context, token.ID) (*token.Record, error) {
	panic("page 7: invalid type")
}

// SPEC §5: a panic in a request handler is logged at error and the request
// gets 500 InternalError; the server goes on.
func TestHandlerPanicIsAnError(t *testing.T) {
	hs := newHarness(t)
	tok := hs.apply("inst-a", "a", "R", time.Hour)
	var logs strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
	svc, err := token.NewService(panicStore{hs.store}, hs.keyring, token.ServiceConfig{Instances: []string{"inst-a"}, Now: hs.clock.Now, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHandler(Config{Service: svc, Keys: hs.h.keys, Now: hs.clock.Now, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c := &Client{Endpoint: srv.URL, AccessKeyID: adminID, AccessKeySecret: adminSecret}
	hs.clock.Set(time.Now())
	_, err = c.QueryToken(t.Context(), "inst-a", tok)
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.Status != 500 || apiErr.Code != CodeInternal {
		t.Fatalf("QueryToken over a panicking store: %v, want 500 InternalError", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "handler panicked") {
		t.Fatalf("the panic was not logged at error:\n%s", logs.String())
	}
	if _, err := c.ListTokens(t.Context(), "inst-a", 1, ""); err != nil {
		t.Fatalf("the server did not go on after the panic: %v", err)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
