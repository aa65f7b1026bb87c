package token

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Clients admin (SPEC §2.2 ListClients / KickClient). Brokers report their
// connections to the token service (ReportClients: in process, or over the
// API with a broker key) every few seconds; the service merges what every
// broker reported into one list. A kick is an entry of the revocation log,
// which every broker already follows, so it reaches the client wherever it
// is connected, and a broker that was down hears of it when it is back.

// ClientInfo is one MQTT connection of a broker.
type ClientInfo struct {
	// Conn identifies the connection within its broker's reports.
	Conn            uint64
	ClientID        string
	Remote          string
	ProtocolVersion byte // 4: 3.1.1, 5
	TokenIDs        []ID
	Since           time.Time // connected since
	Persistent      bool      // the session outlives the connection
	// Broker is the reporting broker's ID (set by the service).
	Broker string
}

// ClientReport is one report of a broker's connections of one instance:
// every connection it has (Full), or the ones that came (Connected) and
// went (Gone, by Conn) since its previous report. An empty report is a
// heartbeat. A broker may split a full picture over a Full report and the
// reports after it.
type ClientReport struct {
	InstanceID string
	// Broker identifies the reporting process; a restarted broker is a new
	// one.
	Broker string
	// Seq numbers the broker's reports 1, 2, 3…: a gap means a report was
	// lost, and the service asks for a full one.
	Seq       uint64
	Full      bool
	Connected []ClientInfo
	Gone      []uint64
}

// ClientFilter selects connections for ListClients; empty fields select all.
type ClientFilter struct {
	ClientID string
	TokenID  *ID
}

// Selects reports whether the filter selects connection c.
func (f ClientFilter) Selects(c ClientInfo) bool {
	return (f.ClientID == "" || c.ClientID == f.ClientID) && (f.TokenID == nil || slices.Contains(c.TokenIDs, *f.TokenID))
}

// AddLocalClients adds a source of connections of instanceID the service
// lists without reports: a broker in the same process (role all), whose
// Authority then needs no Registry, and no copy of its connections is kept.
func (s *Service) AddLocalClients(instanceID string, connections func() []ClientInfo) {
	s.localMu.Lock()
	s.local = append(s.local, localClients{instanceID, connections})
	s.localMu.Unlock()
}

type localClients struct {
	instance    string
	connections func() []ClientInfo
}

// Registry defaults.
const (
	// DefaultReportTTL is how long a broker's connections are listed after
	// its last report: brokers report at least every DefaultReportInterval.
	DefaultReportTTL = 30 * time.Second
	// KickRetention is how long a kick stays in the revocation log: a broker
	// that starts within it still discards a session of the kicked client ID
	// it kept from before the kick.
	KickRetention = 31 * 24 * time.Hour
	// MaxReportedConnections bounds what one broker may report.
	MaxReportedConnections = 1 << 20
)

// ErrResync answers a report the service cannot apply: it has no picture of
// that broker (it restarted, or the broker's previous report was lost). The
// broker sends a full report next.
var ErrResync = fmt.Errorf("client report out of sequence; send a full one")

// ClientStore keeps what brokers report of their connections. A Store that
// implements it (pgstore) shares the reports between token-service
// replicas; otherwise the service keeps them in memory, and a restarted
// service asks every broker for a full report on its next one.
type ClientStore interface {
	// ApplyClientReport applies a report received at now, or drops what
	// it held of that broker and returns ErrResync when the report does
	// not follow the last one it applied (not Full, and not Seq+1).
	ApplyClientReport(ctx context.Context, r ClientReport, now time.Time) error
	// ReportedClients returns the connections of instanceID that f selects,
	// of brokers that reported after seenAfter, in no order.
	ReportedClients(ctx context.Context, instanceID string, f ClientFilter, seenAfter time.Time) ([]ClientInfo, error)
}

// registry is the in-memory ClientStore.
type registry struct {
	mu      sync.Mutex
	brokers map[string]*brokerClients
}

type brokerClients struct {
	instance string
	seq      uint64
	seen     time.Time
	conns    map[uint64]ClientInfo
}

// ReportClients applies a broker's report; ErrResync asks for a full one.
func (s *Service) ReportClients(ctx context.Context, r ClientReport) error {
	if !s.Serves(r.InstanceID) {
		return ErrInstanceNotServed
	}
	if r.Broker == "" {
		return paramErrorf("BrokerId", "is empty")
	}
	if len(r.Connected) > MaxReportedConnections {
		return paramErrorf("Connected", "more than %d connections in one report", MaxReportedConnections)
	}
	err := s.clients.ApplyClientReport(ctx, r, s.now())
	if err != nil && !errors.Is(err, ErrResync) {
		var pe *ParamError
		if !errors.As(err, &pe) {
			return fmt.Errorf("client report: %w", s.storeFailed("report clients", err))
		}
	}
	return err
}

// ApplyClientReport implements ClientStore.
func (reg *registry) ApplyClientReport(_ context.Context, r ClientReport, now time.Time) error {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	b := reg.brokers[r.Broker]
	switch {
	case r.Full:
		b = &brokerClients{instance: r.InstanceID, conns: make(map[uint64]ClientInfo, len(r.Connected))}
		reg.brokers[r.Broker] = b
	case b == nil || b.instance != r.InstanceID || r.Seq != b.seq+1:
		delete(reg.brokers, r.Broker)
		return ErrResync
	}
	if len(b.conns)+len(r.Connected) > MaxReportedConnections {
		delete(reg.brokers, r.Broker)
		return paramErrorf("Connected", "more than %d connections reported by one broker", MaxReportedConnections)
	}
	b.seq, b.seen = r.Seq, now
	for _, id := range r.Gone {
		delete(b.conns, id)
	}
	for _, c := range r.Connected {
		c.Broker = r.Broker
		b.conns[c.Conn] = c
	}
	for id, o := range reg.brokers { // forget brokers that stopped reporting
		if now.Sub(o.seen) > time.Hour {
			delete(reg.brokers, id)
		}
	}
	return nil
}

// ReportedClients implements ClientStore.
func (reg *registry) ReportedClients(_ context.Context, instanceID string, f ClientFilter, seenAfter time.Time) ([]ClientInfo, error) {
	var out []ClientInfo
	reg.mu.Lock()
	defer reg.mu.Unlock()
	for _, b := range reg.brokers {
		if b.instance != instanceID || !b.seen.After(seenAfter) {
			continue
		}
		for _, c := range b.conns {
			if f.Selects(c) {
				out = append(out, c)
			}
		}
	}
	return out, nil
}

// Clients returns the connections of instanceID that brokers reported and
// f selects, ordered by client ID, then connection time, then broker.
func (s *Service) Clients(ctx context.Context, instanceID string, f ClientFilter) ([]ClientInfo, error) {
	if !s.Serves(instanceID) {
		return nil, ErrInstanceNotServed
	}
	out, err := s.clients.ReportedClients(ctx, instanceID, f, s.now().Add(-s.reportTTL))
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", s.storeFailed("list clients", err))
	}
	s.localMu.Lock()
	local := slices.Clone(s.local)
	s.localMu.Unlock()
	for _, src := range local {
		if src.instance != instanceID {
			continue
		}
		for _, c := range src.connections() {
			if f.Selects(c) {
				out = append(out, c)
			}
		}
	}
	slices.SortFunc(out, CompareClients)
	return out, nil
}

// CompareClients orders connections by client ID, then connection time,
// then broker and connection: the order of ListClients.
func CompareClients(a, b ClientInfo) int {
	return cmp.Or(cmp.Compare(a.ClientID, b.ClientID), a.Since.Compare(b.Since),
		cmp.Compare(a.Broker, b.Broker), cmp.Compare(a.Conn, b.Conn))
}

// KickClient kicks every connection of clientID on every broker of the
// instance (SPEC §2.2) and has their sessions discarded: it appends a kick
// to the revocation log, durable when KickClient returns, which brokers
// apply within a second. It returns the kick and how many connections of
// that client ID brokers had reported (0 does not mean nothing happens: a
// broker that keeps an offline session of it discards that).
func (s *Service) KickClient(ctx context.Context, instanceID, clientID string) (Revocation, int, error) {
	if !s.Serves(instanceID) {
		return Revocation{}, 0, ErrInstanceNotServed
	}
	if err := ValidateClientID(clientID); err != nil {
		return Revocation{}, 0, err
	}
	now := ms(s.now())
	k := Revocation{InstanceID: instanceID, ClientID: clientID, RevokeTime: now, ExpireTime: now.Add(KickRetention)}
	seq, err := s.store.Kick(ctx, k)
	if err != nil {
		return Revocation{}, 0, fmt.Errorf("kick client: %w", s.storeFailed("kick", err))
	}
	k.Seq = seq
	s.revoked.notify()
	known, _ := s.Clients(ctx, instanceID, ClientFilter{ClientID: clientID}) // for the answer only: the kick is logged
	s.log.Info("client kicked", "client", clientID, "instance", instanceID, "connections", len(known))
	return k, len(known), nil
}
