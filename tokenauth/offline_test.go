package tokenauth

import (
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/token"
)

// Permits answers for a session that is gone: its own tokens, as long as
// they are neither expired nor revoked; nothing after a kick.
func TestPermitsOffline(t *testing.T) {
	f := newFixture(t, nil)
	rd, rrec := f.apply(token.ActionRead, time.Hour, "devices/${clientid}/#")
	wr, _ := f.apply(token.ActionWrite, 2*time.Second, "out/#")
	s, _ := f.mustConnect("pump-1", "Token|AK1|"+testInstance, "R|"+rd+"|W|"+wr)
	s.End()
	now := time.Now()
	for _, tc := range []struct {
		typ  token.Actions
		t    string
		at   time.Time
		want bool
	}{
		{token.ActionRead, "devices/pump-1/x", now, true},
		{token.ActionRead, "devices/pump-2/x", now, false},
		{token.ActionRead, "out/x", now, false},
		{token.ActionWrite, "out/x", now, true},
		{token.ActionWrite, "out/x", now.Add(3 * time.Second), false}, // the W token has expired by then
		{token.ActionRead, "devices/pump-1/x", rrec.ExpireTime, false},
		{token.ActionWrite, "$SYS/x", now, false},
		{token.ActionRead, "", now, false},
	} {
		if got := s.Permits(tc.typ, tc.t, tc.at); got != tc.want {
			t.Errorf("Permits(%v, %q, +%v) = %v", tc.typ, tc.t, tc.at.Sub(now).Round(time.Second), got)
		}
	}
	f.a.Revoke(token.Revocation{ID: rrec.ID, RevokeTime: now, ExpireTime: rrec.ExpireTime})
	if s.Permits(token.ActionRead, "devices/pump-1/x", now) {
		t.Fatal("a revoked token still permits")
	}

	// Restore rebuilds the same from the grants alone.
	grants := s.Grants()
	form, ak := s.Credential()
	r := f.a.Restore("pump-1", form, ak, grants, &recClient{})
	if !r.Closing() || !r.Permits(token.ActionWrite, "out/x", now) || r.Permits(token.ActionRead, "devices/pump-1/x", now) {
		t.Fatal("restored session answers differently")
	}
	if r2 := f.a.Restore("pump-2", form, ak, grants, &recClient{}); r2.Permits(token.ActionWrite, "devices/pump-2/x", now) {
		t.Fatal("restored session of another client")
	}

	// After a kick, nothing.
	other, _ := f.apply(token.ActionReadWrite, time.Hour, "k/#")
	k, _ := f.mustConnect("kicked", "d", other)
	k.Kick(CauseInvalid, token.ActionReadWrite, "test")
	if k.Permits(token.ActionRead, "k/x", now) {
		t.Fatal("a kicked session permits")
	}
}
