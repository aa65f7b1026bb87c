package tokenauth

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/token"
)

// Every row of SPEC §3.1's CONNACK table, decided by the core.
func TestConnectDecisions(t *testing.T) {
	f := newFixture(t, nil)
	rw, _ := f.apply(token.ActionReadWrite, time.Hour, "dev/#")
	r, _ := f.apply(token.ActionRead, time.Hour, "in/#")
	w, _ := f.apply(token.ActionWrite, time.Hour, "out/+")
	revoked, _ := f.apply(token.ActionReadWrite, time.Hour, "dev/#")
	f.revoke(revoked)
	expiring, _ := f.apply(token.ActionReadWrite, time.Minute, "dev/#")
	otherInst, _, err := f.ts.Apply(t.Context(), token.ApplyRequest{InstanceID: "inst-b", AccessKeyID: "AK1",
		Resources: []string{"x"}, Actions: token.ActionRead, ExpireTime: f.ts.Clock.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	forged := rw[:20] + strings.Map(func(c rune) rune {
		if c == 'A' {
			return 'B'
		}
		return 'A'
	}, rw[20:24]) + rw[24:]
	apsara := "Token|AK1|" + testInstance

	for _, tc := range []struct {
		name       string
		req        ConnectRequest
		code       ReasonCode // 0: accepted
		reason     string
		withTokID  bool
		read, pub  string // accepted: a topic the rights must allow to read / publish
		noRead     string // accepted: a topic they must not allow to read
		clockAhead time.Duration
	}{
		{name: "plain", req: ConnectRequest{Username: []byte("dev"), Password: []byte(rw), HasPassword: true}, read: "dev/a", pub: "dev/b", noRead: "other"},
		{name: "plain without username", req: ConnectRequest{Password: []byte(rw), HasPassword: true}, read: "dev/a"},
		{name: "apsara R and W", req: ConnectRequest{Username: []byte(apsara), Password: []byte("R|" + r + "|W|" + w), HasPassword: true},
			read: "in/x/y", pub: "out/z", noRead: "out/z"},
		{name: "apsara RW", req: ConnectRequest{Username: []byte(apsara), Password: []byte("RW|" + rw), HasPassword: true}, read: "dev/x", pub: "dev/y"},
		{name: "token as MQTT 5 authentication data", req: ConnectRequest{AuthMethod: AuthMethod, AuthData: []byte(rw)}, read: "dev/x"},
		{name: "will inside W", req: ConnectRequest{Password: []byte(rw), HasPassword: true, HasWill: true, WillTopic: "dev/lwt"}, read: "dev/x"},
		{name: "no password", req: ConnectRequest{Username: []byte(apsara)}, code: ReasonBadCredentials, reason: "malformed_credentials"},
		{name: "empty password", req: ConnectRequest{Username: []byte("d"), HasPassword: true}, code: ReasonBadCredentials, reason: "malformed_credentials"},
		{name: "malformed password", req: ConnectRequest{Username: []byte(apsara), Password: []byte("X|" + rw), HasPassword: true}, code: ReasonBadCredentials, reason: "malformed_credentials"},
		{name: "forged", req: ConnectRequest{Password: []byte(forged), HasPassword: true}, code: ReasonBadCredentials, reason: "forged_token"},
		{name: "revoked", req: ConnectRequest{Password: []byte(revoked), HasPassword: true}, code: ReasonBadCredentials, reason: "revoked_token"},
		{name: "expired", req: ConnectRequest{Password: []byte(expiring), HasPassword: true}, code: ReasonBadCredentials, reason: "expired_token", clockAhead: 2 * time.Minute},
		{name: "username of another instance", req: ConnectRequest{Username: []byte("Token|AK1|inst-b"), Password: []byte("RW|" + rw), HasPassword: true}, code: ReasonNotAuthorized, reason: "wrong_instance"},
		{name: "token of another instance", req: ConnectRequest{Password: []byte(otherInst), HasPassword: true}, code: ReasonNotAuthorized, reason: "wrong_instance"},
		{name: "token of another access key", req: ConnectRequest{Username: []byte("Token|AK2|" + testInstance), Password: []byte("RW|" + rw), HasPassword: true}, code: ReasonNotAuthorized, reason: "wrong_access_key", withTokID: true},
		{name: "R token given as W", req: ConnectRequest{Username: []byte(apsara), Password: []byte("W|" + r), HasPassword: true}, code: ReasonNotAuthorized, reason: "type_not_covered", withTokID: true},
		{name: "will outside W", req: ConnectRequest{Password: []byte(rw), HasPassword: true, HasWill: true, WillTopic: "elsewhere"}, code: ReasonNotAuthorized, reason: "will_not_allowed", withTokID: true},
		{name: "will to $SYS", req: ConnectRequest{Password: []byte(rw), HasPassword: true, HasWill: true, WillTopic: "$SYS/x"}, code: ReasonNotAuthorized, reason: "will_not_allowed", withTokID: true},
		{name: "other authentication method", req: ConnectRequest{Password: []byte(rw), HasPassword: true, AuthMethod: "SCRAM-SHA-1"}, code: ReasonBadAuthMethod, reason: "bad_authentication_method"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.ts.Clock.Advance(tc.clockAhead)
			defer f.ts.Clock.Advance(-tc.clockAhead)
			tc.req.ClientID = "c-" + tc.name
			s, ref := f.a.Connect(tc.req, &recClient{})
			if tc.code != 0 {
				if ref == nil || ref.Code != tc.code || ref.Reason != tc.reason {
					t.Fatalf("got %v, want refusal 0x%02x %s", ref, byte(tc.code), tc.reason)
				}
				if tc.withTokID != (ref.TokenID != "") {
					t.Fatalf("refusal names token %q", ref.TokenID)
				}
				if !f.obs.has("connect:refused:" + tc.reason) {
					t.Fatal("refusal not observed")
				}
				return
			}
			if ref != nil {
				t.Fatalf("refused: %v", ref)
			}
			defer s.End()
			rights := s.Rights()
			if tc.read != "" && !rights.Readable(tc.read) {
				t.Errorf("may not read %q", tc.read)
			}
			if tc.pub != "" && !rights.Writable(tc.pub) {
				t.Errorf("may not publish to %q", tc.pub)
			}
			if tc.noRead != "" && rights.Readable(tc.noRead) {
				t.Errorf("may read %q", tc.noRead)
			}
			if s.ClientID() != tc.req.ClientID {
				t.Errorf("ClientID %q", s.ClientID())
			}
		})
	}
	if !f.obs.has("connect:accepted:ok") {
		t.Fatal("acceptance not observed")
	}
}

// A token service that cannot answer means 0x88, never a way in; a token
// with a recent positive answer still gets in (stale grace).
func TestConnectDuringOutage(t *testing.T) {
	f := newFixture(t, nil)
	cached, _ := f.apply(token.ActionReadWrite, time.Hour, "a/#")
	fresh, _ := f.apply(token.ActionReadWrite, time.Hour, "a/#")
	s, _ := f.mustConnect("warm", "d", cached)
	s.End()
	f.val.down.Store(true)
	f.a.Cache().Purge() // nothing cached: the service must answer
	_, _, ref := f.connect("cold", "d", fresh)
	if ref == nil || ref.Code != ReasonUnavailable || !errors.Is(ref.Err, ErrUnavailable) {
		t.Fatalf("outage with no cached answer: %v, want 0x88", ref)
	}
	if ref.Code.V3() != 0x03 {
		t.Fatalf("v3 code 0x%02x, want 0x03", ref.Code.V3())
	}
	f.val.down.Store(false)
	s, _ = f.mustConnect("warm-again", "d", cached) // cached now
	s.End()
	f.val.down.Store(true)
	if _, _, ref := f.connect("stale", "d", cached); ref != nil {
		t.Fatalf("a cached positive answer did not admit during the outage: %v", ref)
	}
}

// The plain form can be turned off.
func TestPlainFormOff(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.AllowPlain = false })
	tok, _ := f.apply(token.ActionRead, time.Hour, "a")
	if _, _, ref := f.connect("p", "device", tok); ref == nil || ref.Code != ReasonBadCredentials {
		t.Fatalf("plain form with AllowPlain off: %v", ref)
	}
	if _, _, ref := f.connect("p", "Token|AK1|"+testInstance, "R|"+tok); ref != nil {
		t.Fatalf("ApsaraMQ form refused: %v", ref)
	}
}

func TestNewChecksConfig(t *testing.T) {
	v := &flaky{}
	for name, cfg := range map[string]Config{
		"no validator":    {InstanceID: "i", Feed: v},
		"no feed":         {InstanceID: "i", Validator: v},
		"bad instance id": {InstanceID: "", Validator: v, Feed: v},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}

func TestReasonCodes(t *testing.T) {
	for _, tc := range []struct {
		c    ReasonCode
		v3   byte
		text string
	}{
		{ReasonBadCredentials, 0x04, "0x86"}, {ReasonNotAuthorized, 0x05, "0x87"},
		{ReasonUnavailable, 0x03, "0x88"}, {ReasonBadAuthMethod, 0x03, "0x8c"},
	} {
		if tc.c.V3() != tc.v3 || tc.c.String() != tc.text {
			t.Errorf("%v: V3 0x%02x, String %q", tc.c, tc.c.V3(), tc.c.String())
		}
	}
	if (&Refusal{Code: ReasonUnavailable, Reason: "x", Err: errDown}).Error() == "" {
		t.Error("empty refusal text")
	}
}

// The refusal's log line names the code the client was sent: the MQTT
// 3.1.1 return code for a 3.1.1 client.
func TestRefusalLogNamesTheSentCode(t *testing.T) {
	var buf strings.Builder
	var mu sync.Mutex
	f := newFixture(t, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			return buf.Write(p)
		}), nil))
	})
	r, _ := f.apply(token.ActionRead, time.Hour, "a")
	for _, v := range []byte{4, 5} {
		f.a.Connect(ConnectRequest{ClientID: fmt.Sprint("v", v), ProtocolVersion: v, Username: []byte("Token|AK1|" + testInstance),
			Password: []byte("W|" + r), HasPassword: true}, &recClient{})
	}
	mu.Lock()
	logs := buf.String()
	mu.Unlock()
	if !strings.Contains(logs, "client=v4 ") || !strings.Contains(logs, "code=0x05") || !strings.Contains(logs, "code=0x87") {
		t.Fatalf("log:\n%s", logs)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
