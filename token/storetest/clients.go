package storetest

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/internal/testkit"
	"github.com/tokenmq/tokenmq/token"
)

func conn(n uint64, clientID string, since time.Time) token.ClientInfo {
	return token.ClientInfo{Conn: n, ClientID: clientID, Remote: "10.0.0.1:1", ProtocolVersion: 5, Since: since}
}

func listedIDs(t *testing.T, svc *token.Service, f token.ClientFilter) []string {
	t.Helper()
	cs, err := svc.Clients(context.Background(), "inst-a", f)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range cs {
		out = append(out, c.Broker+":"+c.ClientID)
	}
	return out
}

// ClientReports tests the client registry of token services over stores
// (ListClients): what brokers report, in order, deltas, a lost report, the
// TTL. With several stores (replicas on one database), a report to one
// is listed by the others.
func ClientReports(t *testing.T, stores ...token.Store) {
	clk := testkit.NewClock(base)
	kr, err := token.LoadOrCreateKeyring(filepath.Join(t.TempDir(), "keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	var svcs []*token.Service
	for _, st := range stores {
		svc, err := token.NewService(st, kr, token.ServiceConfig{Instances: []string{"inst-a", "inst-b"}, Now: clk.Now,
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		svcs = append(svcs, svc)
	}
	svc := svcs[len(svcs)-1] // lists; reports go round the replicas
	next := 0
	ctx := context.Background()
	now := clk.Now()
	report := func(r token.ClientReport) error {
		r.InstanceID = "inst-a"
		next++
		return svcs[next%len(svcs)].ReportClients(ctx, r)
	}
	if err := report(token.ClientReport{Broker: "x", Seq: 1}); !errors.Is(err, token.ErrResync) {
		t.Fatalf("a first report that is not full: %v, want ErrResync", err)
	}
	if err := report(token.ClientReport{Broker: "x", Seq: 1, Full: true,
		Connected: []token.ClientInfo{conn(1, "b", now), conn(2, "a", now.Add(time.Second))}}); err != nil {
		t.Fatal(err)
	}
	if err := report(token.ClientReport{Broker: "y", Seq: 7, Full: true, Connected: []token.ClientInfo{conn(1, "a", now)}}); err != nil {
		t.Fatal(err)
	}
	if got := listedIDs(t, svc, token.ClientFilter{}); !slices.Equal(got, []string{"y:a", "x:a", "x:b"}) {
		t.Fatalf("listed %v (by client ID, then connection time)", got)
	}
	if got := listedIDs(t, svc, token.ClientFilter{ClientID: "b"}); !slices.Equal(got, []string{"x:b"}) {
		t.Fatalf("ClientID filter: %v", got)
	}
	// A delta: one gone, one new.
	if err := report(token.ClientReport{Broker: "x", Seq: 2, Gone: []uint64{1}, Connected: []token.ClientInfo{conn(3, "c", now)}}); err != nil {
		t.Fatal(err)
	}
	if got := listedIDs(t, svc, token.ClientFilter{}); !slices.Equal(got, []string{"y:a", "x:a", "x:c"}) {
		t.Fatalf("after a delta: %v", got)
	}
	// A lost report: the next one is refused and the broker's picture
	// dropped until it sends a full one.
	if err := report(token.ClientReport{Broker: "x", Seq: 4}); !errors.Is(err, token.ErrResync) {
		t.Fatalf("a report after a gap: %v, want ErrResync", err)
	}
	if got := listedIDs(t, svc, token.ClientFilter{}); !slices.Equal(got, []string{"y:a"}) {
		t.Fatalf("after a gap: %v", got)
	}
	// Another instance's reports are not listed; an instance not served is refused.
	if err := svc.ReportClients(ctx, token.ClientReport{InstanceID: "inst-b", Broker: "z", Seq: 1, Full: true,
		Connected: []token.ClientInfo{conn(1, "q", now)}}); err != nil {
		t.Fatal(err)
	}
	if got := listedIDs(t, svc, token.ClientFilter{}); !slices.Equal(got, []string{"y:a"}) {
		t.Fatalf("inst-b's connection listed for inst-a: %v", got)
	}
	if err := svc.ReportClients(ctx, token.ClientReport{InstanceID: "nope", Broker: "z", Seq: 1, Full: true}); !errors.Is(err, token.ErrInstanceNotServed) {
		t.Fatalf("unserved instance: %v", err)
	}
	// A broker that stops reporting is forgotten after the TTL; a heartbeat keeps it.
	clk.Advance(token.DefaultReportTTL / 2)
	if err := report(token.ClientReport{Broker: "y", Seq: 8}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(token.DefaultReportTTL/2 + time.Second)
	if got := listedIDs(t, svc, token.ClientFilter{}); !slices.Equal(got, []string{"y:a"}) {
		t.Fatalf("a broker that sent a heartbeat: %v", got)
	}
	clk.Advance(token.DefaultReportTTL)
	if got := listedIDs(t, svc, token.ClientFilter{}); len(got) != 0 {
		t.Fatalf("a broker that went quiet is still listed: %v", got)
	}
}
