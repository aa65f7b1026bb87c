package hook

import (
	"fmt"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tokenmq/tokenmq/token"
)

// RevokeToken reaches the hook through the Authority's feed: v5 clients get
// the notice (code 3) and DISCONNECT 0x98, v3.1.1 clients the notice and a
// closed socket; expiry is code 2 and 0xA0.
func TestRevocationAndExpiryKicks(t *testing.T) {
	for _, v := range []byte{5, 4} {
		t.Run(fmt.Sprint("v", v), func(t *testing.T) {
			r := newRig(t, nil)
			tok := r.apply(token.ActionReadWrite, time.Hour, "a/#")
			cl, w := r.mustConnect("revoked", v, "d", tok)
			short := r.apply(token.ActionRead, 300*time.Millisecond, "a/#")
			clExp, wExp := r.mustConnect("expiring", v, "d", short)
			r.revoke(tok)
			for _, tc := range []struct {
				w          *wire
				code       float64
				disconnect byte
			}{{w, 3, 0x98}, {wExp, 2, 0xA0}} {
				if v == 5 {
					if d := tc.w.waitPacket(t, packets.Disconnect); d.ReasonCode != tc.disconnect {
						t.Fatalf("DISCONNECT 0x%02x, want 0x%02x", d.ReasonCode, tc.disconnect)
					}
				} else {
					waitClosed(t, tc.w)
				}
				if code, _ := invalidNotice(t, tc.w); code != tc.code {
					t.Fatalf("notice code %v, want %v", code, tc.code)
				}
			}
			if r.h.OnACLCheck(cl, "a/x", false) || r.h.OnACLCheck(clExp, "a/x", false) {
				t.Fatal("a kicked client keeps its rights")
			}
		})
	}
}
