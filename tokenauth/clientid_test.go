package tokenauth

import (
	"slices"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/token"
)

// SPEC §3.7: a token bound to client IDs admits only those (exactly, or by
// prefix); others get 0x85 (v3.1.1 0x02).
func TestClientBoundTokens(t *testing.T) {
	f := newFixture(t, nil)
	tok, _ := f.applyBound([]string{"dev-1", "GID_pump@@@*"}, token.ActionReadWrite, time.Hour, "a/#")
	for _, tc := range []struct {
		clientID string
		ok       bool
	}{
		{"dev-1", true}, {"GID_pump@@@7", true}, {"GID_pump@@@", true},
		{"dev-10", false}, {"dev-", false}, {"GID_pump@@", false}, {"", false},
	} {
		s, _, ref := f.connect(tc.clientID, "d", tok)
		if tc.ok != (ref == nil) {
			t.Fatalf("client %q: refusal %v, want accepted=%v", tc.clientID, ref, tc.ok)
		}
		if ref != nil && (ref.Code != ReasonClientIDNotValid || ref.Reason != "client_id_not_allowed" || ref.Code.V3() != 0x02 || ref.TokenID == "") {
			t.Fatalf("client %q: %v, want 0x85 client_id_not_allowed", tc.clientID, ref)
		}
		if s != nil {
			s.End()
		}
	}
	// In the ApsaraMQ form, every token must name the client.
	unbound, _ := f.apply(token.ActionWrite, time.Hour, "a/#")
	if _, _, ref := f.connect("other", "Token|AK1|"+testInstance, "R|"+tok+"|W|"+unbound); ref == nil || ref.Code != ReasonClientIDNotValid {
		t.Fatalf("a bound R token beside an unbound W one: %v", ref)
	}
}

// ${clientid} stands for the connection's own client ID; a client ID that
// cannot stand as a level gets nothing from such a resource.
func TestClientIDPlaceholder(t *testing.T) {
	f := newFixture(t, nil)
	tok, _ := f.apply(token.ActionReadWrite, time.Hour, "devices/${clientid}/#", "shared/+", "x/${clientid}y")
	for _, tc := range []struct {
		clientID     string
		read, noRead []string
	}{
		{"pump-7", []string{"devices/pump-7/telemetry", "devices/pump-7", "shared/a", "x/${clientid}y"}, []string{"devices/pump-8/x", "devices/${clientid}/x", "devices/+/x"}},
		{"GID@@@a.b", []string{"devices/GID@@@a.b/x"}, []string{"devices/other/x"}},
		{"a/b", []string{"shared/a"}, []string{"devices/a/b/x", "devices/a/x"}},
		{"a+", []string{"shared/a"}, []string{"devices/a+/x"}},
		{"a#", []string{"shared/a"}, []string{"devices/a#/x"}},
		{"$sys", []string{"shared/a"}, []string{"devices/$sys/x"}},
		{"nul\x00", []string{"shared/a"}, []string{"devices/nul\x00/x"}},
	} {
		s, _, ref := f.connect(tc.clientID, "d", tok)
		if ref != nil {
			t.Fatalf("client %q refused: %v", tc.clientID, ref)
		}
		r := s.Rights()
		for _, topic := range tc.read {
			if !r.Readable(topic) || !r.Writable(topic) {
				t.Errorf("client %q may not read and publish %q", tc.clientID, topic)
			}
		}
		for _, topic := range tc.noRead {
			if r.Readable(topic) {
				t.Errorf("client %q may read %q", tc.clientID, topic)
			}
		}
		s.End()
	}
}

func TestExpandResources(t *testing.T) {
	in := []string{"a/${clientid}", "${clientid}", "${clientid}/${clientid}/#", "b/${clientid}x", "c"}
	if got, want := ExpandResources(in, "d7"), []string{"a/d7", "d7", "d7/d7/#", "b/${clientid}x", "c"}; !slices.Equal(got, want) {
		t.Fatalf("ExpandResources = %q, want %q", got, want)
	}
	for _, bad := range []string{"", "x/y", "+", "#", "$x", "a\x00"} {
		if got, want := ExpandResources(in, bad), []string{"b/${clientid}x", "c"}; !slices.Equal(got, want) {
			t.Fatalf("ExpandResources(%q) = %q, want %q", bad, got, want)
		}
	}
}

// A renewal with a token that does not name the connection's client ID is
// an invalid renewal (SPEC §3.7).
func TestRenewObeysBinding(t *testing.T) {
	f := newFixture(t, nil)
	cur, _ := f.apply(token.ActionReadWrite, time.Hour, "a/#")
	elsewhere, _ := f.applyBound([]string{"other-*"}, token.ActionReadWrite, time.Hour, "a/#")
	mine, _ := f.applyBound([]string{"dev-*"}, token.ActionReadWrite, time.Hour, "devices/${clientid}/#")
	s, _ := f.mustConnect("dev-1", "d", cur)
	if got := s.Renew(elsewhere, token.ActionReadWrite); got != RenewInvalid {
		t.Fatalf("renewal with a token bound elsewhere: %v", got)
	}
	if got := s.Renew(mine, token.ActionReadWrite); got != Renewed || !s.Rights().Readable("devices/dev-1/x") || s.Rights().Readable("a/x") {
		t.Fatalf("renewal with a bound, templated token: %v", got)
	}
}
