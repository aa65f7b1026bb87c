package token_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/internal/tokentest"
	"github.com/tokenmq/tokenmq/token"
	"github.com/tokenmq/tokenmq/token/storetest"
)

func TestClientReports(t *testing.T) {
	storetest.ClientReports(t, tokentest.NewService(t, time.Time{}, token.ServiceConfig{}).Store)
}

func TestKickClient(t *testing.T) {
	svc, _ := newService(t)
	ctx := context.Background()
	for _, bad := range []string{"", "a\x00b", string([]byte{0xff})} {
		var pe *token.ParamError
		if _, _, err := svc.KickClient(ctx, "inst-a", bad); !errors.As(err, &pe) || pe.Param != "ClientId" {
			t.Errorf("KickClient(%q): %v", bad, err)
		}
	}
	k, n, err := svc.KickClient(ctx, "inst-a", "pump-1")
	if err != nil || n != 0 || k.Seq == 0 || !k.IsKick() {
		t.Fatalf("KickClient: %+v %d %v", k, n, err)
	}
	page, err := svc.Feed(ctx, "inst-a", 0, 0)
	if err != nil || len(page.Kicks) != 1 || page.Kicks[0].ClientID != "pump-1" || len(page.Revocations) != 0 || page.Head != k.Seq {
		t.Fatalf("feed: %+v %v", page, err)
	}
	if page, _ := svc.Feed(ctx, "inst-b", 0, 0); len(page.Kicks) != 0 {
		t.Fatalf("inst-b's feed has inst-a's kick: %+v", page)
	}
}
