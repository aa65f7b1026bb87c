package tokenauth_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/internal/tokentest"
	"github.com/tokenmq/tokenmq/token"
	"github.com/tokenmq/tokenmq/tokenauth"
)

type nopClient struct{}

func (nopClient) Notify(tokenauth.Notice)    {}
func (nopClient) Disconnect(tokenauth.Cause) {}
func (nopClient) Close(tokenauth.Cause)      {}
func (nopClient) Restrict(*tokenauth.Rights) {}
func (nopClient) String() string             { return "bench" }

// BenchmarkConnectNewToken is the broker's side of a CONNECT whose token it
// has not seen (the bench's connect-new-token scenario, in one process):
// credentials, the cache's miss, the token service's MAC check and store
// read (embedded bbolt), decoding the record and compiling its 100
// resources, and the session's start and end. Tokens are issued before the
// timer starts.
//
//	go test -run='^$' -bench=ConnectNewToken -cpuprofile=/tmp/cpu.prof ./tokenauth
func BenchmarkConnectNewToken(b *testing.B) {
	b.Run("shared-resources", func(b *testing.B) { benchConnectNewToken(b, false) })
	b.Run("distinct-resources", func(b *testing.B) { benchConnectNewToken(b, true) })
}

// benchConnectNewToken: 4096 tokens of 100 resources each, the same list
// for every token or a list of its own (distinct).
func benchConnectNewToken(b *testing.B, distinct bool) {
	ts := tokentest.NewService(b, time.Time{}, token.ServiceConfig{})
	auth, err := tokenauth.New(tokenauth.Config{InstanceID: "inst-a", Validator: ts.Service, Feed: ts.Service, AllowPlain: true,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	resources := make([]string, 100)
	for i := range resources {
		resources[i] = fmt.Sprintf("fleet/%d/+/telemetry", i)
	}
	const n = 4096
	toks := make([]string, n)
	errs := make(chan error, 64)
	for w := range 64 { // concurrent issues share the store's commits
		go func() {
			for i := w; i < n; i += 64 {
				rs := resources
				if distinct {
					rs = append([]string{fmt.Sprintf("device/%d/#", i)}, resources[1:]...)
				}
				tok, _, err := ts.Service.Apply(context.Background(), token.ApplyRequest{InstanceID: "inst-a",
					Resources: rs, Actions: token.ActionReadWrite, ExpireTime: ts.Clock.Now().Add(time.Hour)})
				if err != nil {
					errs <- err
					return
				}
				toks[i] = tok
			}
			errs <- nil
		}()
	}
	for range 64 {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i > 0 && i%n == 0 {
			b.StopTimer()
			auth.Cache().Purge()
			b.StartTimer()
		}
		s, ref := auth.Connect(tokenauth.ConnectRequest{ClientID: "c", ProtocolVersion: 4, Username: []byte("d"),
			Password: []byte(toks[i%n]), HasPassword: true}, nopClient{})
		if ref != nil {
			b.Fatal(ref.Reason)
		}
		s.End()
	}
}
