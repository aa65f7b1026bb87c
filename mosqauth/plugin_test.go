package mosqauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/internal/testkit"
	"github.com/tokenmq/tokenmq/internal/tokentest"
	"github.com/tokenmq/tokenmq/token"
	"github.com/tokenmq/tokenmq/tokenauth"
)

// fakeBroker records what the plugin asks of Mosquitto, and knows the
// client IDs of the client pointers the tests make up.
type fakeBroker struct {
	mu     sync.Mutex
	ids    map[Ref]string
	events []string // "publish <id> <topic> <payload>", "kick <id>"
	lines  []string
}

func (b *fakeBroker) Publish(clientID, topic string, payload []byte, props []tokenauth.Property) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.events = append(b.events, fmt.Sprintf("publish %s %s %s", clientID, topic, payload))
}

func (b *fakeBroker) Wake() {}

func (b *fakeBroker) Kick(clientID string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.events = append(b.events, "kick "+clientID)
}

func (b *fakeBroker) ClientID(r Ref) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ids[r]
}

func (b *fakeBroker) Log(_ slog.Level, line string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lines = append(b.lines, line)
}

func (b *fakeBroker) take() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.events
	b.events = nil
	return e
}

type rig struct {
	t   *testing.T
	p   *Plugin
	b   *fakeBroker
	svc *tokentest.Service
}

// newRig is a plugin over a real token service (in process: the core's
// Validator and revocation feed), on the real clock.
func newRig(t *testing.T, edit func(*Options)) *rig {
	t.Helper()
	svc := tokentest.NewService(t, time.Time{}, token.ServiceConfig{Now: time.Now, MinTTL: 100 * time.Millisecond})
	o := Options{InstanceID: "inst-a", AllowPlain: true, ExpireNotice: 0}
	o.Cache.QueryTimeout = 300 * time.Millisecond
	if edit != nil {
		edit(&o)
	}
	b := &fakeBroker{ids: map[Ref]string{}}
	p, err := newPlugin(o, b, svc, svc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return &rig{t: t, p: p, b: b, svc: svc}
}

func (r *rig) apply(resources string, actions token.Actions, ttl time.Duration) (string, token.ID) {
	r.t.Helper()
	tok, rec, err := r.svc.Apply(r.t.Context(), token.ApplyRequest{InstanceID: "inst-a", AccessKeyID: "AK1",
		Resources: strings.Split(resources, ","), Actions: actions, ExpireTime: time.Now().Add(ttl)})
	if err != nil {
		r.t.Fatal(err)
	}
	return tok, rec.ID
}

// connect authenticates a v3.1.1 client with the plain form.
func (r *rig) connect(ref Ref, clientID, tok string) Result {
	r.t.Helper()
	r.b.mu.Lock()
	r.b.ids[ref] = clientID
	r.b.mu.Unlock()
	res := r.p.BasicAuth(ref, ConnInfo{ClientID: clientID, Username: []byte("d"), Password: []byte(tok), HasPassword: true,
		ProtocolVersion: 4})
	r.p.Tick() // the CONNACK is out: the session's timers start
	return res
}

// ticks runs Mosquitto's loop until want is among the events, or fails.
func (r *rig) waitEvent(want string) []string {
	r.t.Helper()
	var seen []string
	testkit.WaitFor(r.t, 3*time.Second, want, func() bool {
		r.p.Tick()
		seen = append(seen, r.b.take()...)
		for _, e := range seen {
			if e == want || strings.HasPrefix(e, want) {
				return true
			}
		}
		return false
	})
	return seen
}

func TestConnectAndACL(t *testing.T) {
	r := newRig(t, nil)
	tok, _ := r.apply("dev/+/cmd,dev/all/#", token.ActionReadWrite, time.Hour)
	if got := r.connect(1, "d1", tok); got != Allow {
		t.Fatalf("valid token: %v", got)
	}
	if got := r.connect(2, "d2", "not-a-token"); got != Deny {
		t.Fatalf("garbage token: %v, want Deny (0x87 / 5)", got)
	}
	for _, tc := range []struct {
		access Access
		topic  string
		want   Result
	}{
		{Write, "dev/7/cmd", Allow}, {Write, "dev/7/status", Deny}, {Write, "$SYS/x", Deny}, {Write, ControlTopic, Allow},
		{Read, "dev/7/cmd", Allow}, {Read, "dev/all/a/b", Allow}, {Read, "other", Deny},
		{Subscribe, "dev/+/cmd", Allow}, {Subscribe, "dev/#", Deny}, {Subscribe, "$share/g/dev/all/#", Allow}, {Subscribe, "#", Deny},
		{Unsubscribe, "anything", Allow},
	} {
		if got := r.p.ACLCheck(1, tc.access, tc.topic); got != tc.want {
			t.Errorf("access %d on %q: %v, want %v", tc.access, tc.topic, got, tc.want)
		}
	}
	// A client pointer the plugin never admitted gets nothing.
	if got := r.p.ACLCheck(99, Read, "dev/7/cmd"); got != Deny {
		t.Errorf("unknown client: %v", got)
	}
}

// After its connection ends, a session's deliveries (an offline
// persistent session's queue) and its Will are judged by the tokens it
// held, as they are now; once its token is revoked, nothing.
func TestGoneSessionFollowsItsToken(t *testing.T) {
	r := newRig(t, nil)
	tok, id := r.apply("fleet/#", token.ActionReadWrite, time.Hour)
	r.connect(1, "sub", tok)
	r.p.Disconnect(1)
	if got := r.p.ACLCheck(1, Read, "fleet/a"); got != Allow {
		t.Fatalf("offline delivery under a valid token: %v", got)
	}
	if got := r.p.ACLCheck(1, Write, "fleet/lwt"); got != Allow {
		t.Fatalf("Will under a valid token: %v", got)
	}
	if got := r.p.ACLCheck(1, Subscribe, "fleet/#"); got != Deny {
		t.Fatalf("a subscription from a gone client: %v", got)
	}
	// Another client reusing the pointer's memory is not this session.
	r.b.ids[1] = "someone-else"
	if got := r.p.ACLCheck(1, Read, "fleet/a"); got != Deny {
		t.Fatalf("a reused pointer with another client ID: %v", got)
	}
	r.b.ids[1] = "sub"
	if _, err := r.svc.Revoke(r.t.Context(), "inst-a", tok); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 3*time.Second, "the revocation to reach the offline session", func() bool {
		return r.p.ACLCheck(1, Read, "fleet/a") == Deny
	})
	_ = id
}

// A revocation ends the connection: first $SYS/tokenInvalidNotice, then
// in a later tick (Mosquitto writes a plugin's message at the start of its
// next loop) the kick, on Mosquitto's thread.
func TestRevocationNoticeThenKick(t *testing.T) {
	r := newRig(t, nil)
	tok, _ := r.apply("dev/#", token.ActionReadWrite, time.Hour)
	r.connect(1, "dev", tok)
	if _, err := r.svc.Revoke(r.t.Context(), "inst-a", tok); err != nil {
		t.Fatal(err)
	}
	var seen []string
	testkit.WaitFor(t, 3*time.Second, "the notice", func() bool {
		r.p.Tick()
		seen = append(seen, r.b.take()...)
		return len(seen) > 0
	})
	if want := `publish dev $SYS/tokenInvalidNotice {"code":3,"type":"RW"}`; len(seen) != 1 || seen[0] != want {
		t.Fatalf("first tick with an event: %q, want only %q", seen, want)
	}
	if got := r.p.ACLCheck(1, Read, "dev/x"); got != Deny {
		t.Fatalf("a kicked connection still reads: %v", got)
	}
	r.waitEvent("kick dev")
}

// A kick decided for a connection that has since been taken over (same
// client ID, new connection) must not end the new one.
func TestKickSparesTheConnectionThatTookOver(t *testing.T) {
	r := newRig(t, nil)
	old, _ := r.apply("dev/#", token.ActionReadWrite, time.Hour)
	fresh, _ := r.apply("dev/#", token.ActionReadWrite, time.Hour)
	r.connect(1, "dev", old)
	r.connect(2, "dev", fresh) // takes the client ID over; Mosquitto disconnects 1 next
	r.p.Disconnect(1)
	if _, err := r.svc.Revoke(r.t.Context(), "inst-a", old); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(700 * time.Millisecond)
	for time.Now().Before(deadline) {
		r.p.Tick()
		for _, e := range r.b.take() {
			t.Fatalf("the old connection's revocation reached Mosquitto: %q", e)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := r.p.ACLCheck(2, Read, "dev/x"); got != Allow {
		t.Fatalf("the connection that took over: %v", got)
	}
	if got := r.p.ACLCheck(1, Read, "dev/x"); got != Deny {
		t.Fatalf("the taken-over pointer: %v", got)
	}
}

func TestExpiryNoticeAndKick(t *testing.T) {
	r := newRig(t, func(o *Options) { o.ExpireNotice = 300 * time.Millisecond })
	tok, _ := r.apply("dev/#", token.ActionReadWrite, 600*time.Millisecond)
	r.connect(1, "dev", tok)
	seen := r.waitEvent("publish dev $SYS/tokenExpireNotice")
	if strings.Contains(strings.Join(seen, "\n"), "kick") {
		t.Fatalf("kicked before the expiry notice: %q", seen)
	}
	seen = r.waitEvent("kick dev")
	if !strings.Contains(strings.Join(seen, "\n"), `$SYS/tokenInvalidNotice {"code":2,"type":"RW"}`) {
		t.Fatalf("no expiry notice (code 2) before the kick: %q", seen)
	}
}

// In-session renewal through $CONTROL/tokenmq/uploadToken.
func TestControlRenewal(t *testing.T) {
	r := newRig(t, nil)
	first, _ := r.apply("a/#", token.ActionReadWrite, time.Hour)
	narrower, _ := r.apply("a/x", token.ActionRead, time.Hour)
	r.connect(1, "dev", first)
	if got := r.p.Control(1, ControlTopic, fmt.Appendf(nil, `{"token":%q,"type":"R"}`, narrower)); got != Allow {
		t.Fatalf("renewal: %v", got)
	}
	if r.p.ACLCheck(1, Read, "a/y") != Deny || r.p.ACLCheck(1, Read, "a/x") != Allow || r.p.ACLCheck(1, Write, "a/y") != Allow {
		t.Fatal("after an R renewal the connection reads a/x only and still writes a/#")
	}
	if got := r.p.Control(7, ControlTopic, []byte("{}")); got != Deny {
		t.Fatalf("from a client the plugin does not know: %v", got)
	}
	// An invalid renewal is acknowledged (Mosquitto would close at once on
	// anything else) and ends the connection with the notice, code 1.
	if got := r.p.Control(1, ControlTopic, []byte(`not json`)); got != Allow {
		t.Fatalf("malformed renewal: %v", got)
	}
	seen := r.waitEvent("kick dev")
	if !strings.Contains(strings.Join(seen, "\n"), `{"code":1,`) {
		t.Fatalf("no invalid notice before the kick: %q", seen)
	}
}

// MQTT 5 enhanced authentication: method "tokenmq" at CONNECT, and AUTH
// re-authentication of an accepted connection; other methods are not ours.
func TestExtAuth(t *testing.T) {
	r := newRig(t, nil)
	first, _ := r.apply("a/#", token.ActionReadWrite, time.Hour)
	second, _ := r.apply("b/#", token.ActionReadWrite, time.Hour)
	in := ConnInfo{ClientID: "dev", ProtocolVersion: 5}
	r.b.ids[1] = "dev"
	if got := r.p.ExtAuth(1, in, "SCRAM-SHA-1", nil); got != Defer {
		t.Fatalf("another method: %v, want Defer (0x8C)", got)
	}
	if got := r.p.ExtAuth(1, in, tokenauth.AuthMethod, []byte(first)); got != Allow {
		t.Fatalf("CONNECT with the token as authentication data: %v", got)
	}
	r.p.Tick()
	if got := r.p.ExtAuth(1, in, tokenauth.AuthMethod, []byte(second)); got != Allow {
		t.Fatalf("re-authentication: %v", got)
	}
	if r.p.ACLCheck(1, Write, "b/x") != Allow || r.p.ACLCheck(1, Write, "a/x") != Deny {
		t.Fatal("re-authentication did not replace the rights")
	}
	if got := r.p.ExtAuth(1, in, tokenauth.AuthMethod, []byte("forged")); got != Deny {
		t.Fatalf("re-authentication with a bad token: %v", got)
	}
	r.waitEvent("kick dev")
}

func TestUnavailableTokenServiceDropsTheConnect(t *testing.T) {
	r := newRig(t, nil)
	tok, _ := r.apply("a/#", token.ActionReadWrite, time.Hour)
	r.svc.Store.Close() // every lookup fails from now on
	start := time.Now()
	if got := r.connect(1, "dev", tok); got != Drop {
		t.Fatalf("token service failing: %v, want Drop (no CONNACK)", got)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the CONNECT held the loop for %v", d)
	}
	joined := strings.Join(r.b.lines, "\n")
	if !strings.Contains(joined, "connect refused") || !strings.Contains(joined, "code=\"none (socket closed)\"") {
		t.Fatalf("the refusal's log line: %s", joined)
	}
}

func TestParseOptions(t *testing.T) {
	env := map[string]string{"TOKENMQ_ACCESS_KEY_ID": "AKENV", "TOKENMQ_ACCESS_KEY_SECRET": "env-secret", "TOKENMQ_TOKEN_SERVICE": "http://env:8080"}
	getenv := func(k string) string { return env[k] }
	o, err := ParseOptions(map[string]string{"token_service": "http://tokens:8080", "expire_notice": "1m", "query_timeout": "250ms"}, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if o.TokenService != "http://tokens:8080" || o.AccessKeyID != "AKENV" || o.InstanceID != "mqtt-local" || o.ExpireNotice != time.Minute ||
		o.Cache.QueryTimeout != 250*time.Millisecond || !o.AllowPlain {
		t.Fatalf("options: %+v", o)
	}
	for opts, want := range map[string]map[string]string{
		"unknown option plugin_opt_tokenservice": {"tokenservice": "x"},
		"is not an http(s) URL":                  {"token_service": "tokens:8080"},
		"plugin_opt_expire_notice":               {"expire_notice": "soon"},
		"at most 10s":                            {"query_timeout": "1m"},
		"plugin_opt_cache_size":                  {"cache_size": "0"},
		"plugin_opt_allow_plain_token":           {"allow_plain_token": "maybe"},
		"plugin_opt_log_level":                   {"log_level": "loud"},
	} {
		if _, err := ParseOptions(want, getenv); err == nil || !errors.Is(err, ErrOption) || !strings.Contains(err.Error(), opts) {
			t.Errorf("%v: %v, want an error about %s", want, err, opts)
		}
	}
	if _, err := ParseOptions(nil, func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "token_service") {
		t.Errorf("nothing set: %v", err)
	}
	if _, err := ParseOptions(map[string]string{"token_service": "http://t"}, func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "access_key") {
		t.Errorf("no key: %v", err)
	}
}

func TestLogQueueBounded(t *testing.T) {
	q := &lineQueue{wake: func() {}}
	for range maxQueuedLines + 5 {
		q.Write([]byte("level=WARN msg=x\n"))
	}
	lines := q.take()
	if len(lines) != maxQueuedLines+1 || !strings.Contains(lines[len(lines)-1].text, "dropped") || lines[0].level != slog.LevelWarn {
		t.Fatalf("%d lines, last %+v", len(lines), lines[len(lines)-1])
	}
	if q.take() != nil {
		t.Fatal("lines left after take")
	}
}

// stuckValidator is a token service that accepts and never answers.
type stuckValidator struct{}

func (stuckValidator) Validate(ctx context.Context, _, _ string) (token.Grant, error) {
	<-ctx.Done()
	return token.Grant{}, ctx.Err()
}

// A stuck token service holds Mosquitto's loop for one query timeout, then
// CONNECTs that need it are refused at once for a while; cached tokens
// still get in.
func TestStuckTokenServiceFailsFast(t *testing.T) {
	svc := tokentest.NewService(t, time.Time{}, token.ServiceConfig{Now: time.Now})
	o := Options{InstanceID: "inst-a", AllowPlain: true}
	o.Cache.QueryTimeout = 300 * time.Millisecond
	b := &fakeBroker{ids: map[Ref]string{}}
	p, err := NewWith(o, b, stuckValidator{}, svc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	tok, _, err := svc.Apply(t.Context(), token.ApplyRequest{InstanceID: "inst-a", AccessKeyID: "AK1", Resources: []string{"a"},
		Actions: token.ActionReadWrite, ExpireTime: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	in := func(id string) ConnInfo {
		return ConnInfo{ClientID: id, Password: []byte(tok), HasPassword: true, ProtocolVersion: 4}
	}
	start := time.Now()
	if got := p.BasicAuth(1, in("first")); got != Drop {
		t.Fatalf("first CONNECT: %v, want Drop", got)
	}
	first := time.Since(start)
	start = time.Now()
	for i := range 10 {
		if got := p.BasicAuth(Ref(2+i), in(fmt.Sprint("next-", i))); got != Drop {
			t.Fatalf("CONNECT %d: %v, want Drop", i, got)
		}
	}
	next := time.Since(start)
	t.Logf("first CONNECT held the loop %v; the next ten %v together", first.Round(time.Millisecond), next.Round(time.Millisecond))
	if first < 250*time.Millisecond || next > first {
		t.Fatalf("first %v (want about the query timeout), next ten %v (want far less)", first, next)
	}
	if !strings.Contains(strings.Join(b.lines, "\n"), "token service slow") {
		t.Fatalf("no log line about the slow token service:\n%s", strings.Join(b.lines, "\n"))
	}
}
