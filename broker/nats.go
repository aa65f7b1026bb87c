package broker

import (
	"bytes"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/tokenmq/tokenmq/natsauth"
	"github.com/tokenmq/tokenmq/tokenauth"
)

// LoadIssuer reads an account nkey seed (SA…) file: the key that signs
// the callout's answers.
func LoadIssuer(path string) (nkeys.KeyPair, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("nats.issuer_seed_file: %w", err)
	}
	kp, err := nkeys.FromSeed(bytes.TrimSpace(b))
	if err != nil {
		return nil, fmt.Errorf("nats.issuer_seed_file %s: not an nkey seed: %w", path, err)
	}
	pub, _ := kp.PublicKey()
	if !nkeys.IsValidPublicAccountKey(pub) {
		return nil, fmt.Errorf("nats.issuer_seed_file %s: an account seed (SA…) is needed, this one is for %s", path, pub[:1])
	}
	return kp, nil
}

// startNATS answers a NATS cluster's authorization requests (SPEC §6.2)
// with an Authority of its own, over the token service in process. Unlike
// the embedded broker's it admits nobody on a stale answer: with the
// token store unreachable, a NATS client is refused (fail closed), and its
// answers must come within the servers' authorization timeout.
func (s *Server) startNATS() error {
	n := s.cfg.NATS
	issuer, err := LoadIssuer(n.IssuerSeedFile)
	if err != nil {
		return err
	}
	cache := s.cfg.Broker.Cache
	cache.StaleGrace = -1
	cache.QueryTimeout = min(cache.QueryTimeout, time.Second)
	auth, err := tokenauth.New(tokenauth.Config{InstanceID: s.cfg.InstanceID, Validator: s.svc, Feed: s.svc, Cache: cache,
		AllowPlain: s.cfg.Broker.AllowPlainToken, Logger: s.log.With("broker", "nats"), Clock: s.clock, Events: s.events})
	if err != nil {
		return err
	}
	auth.Start()
	s.svc.AddLocalClients(s.cfg.InstanceID, auth.Connections)
	s.natsAuth = auth
	c, err := natsauth.Start(natsauth.Config{URL: n.URL, User: n.User, Password: n.Password, Issuer: issuer, Account: n.Account,
		SystemUser: n.SystemUser, SystemPassword: n.SystemPassword, Authority: auth, Tokens: s.svc, Logger: s.log})
	if err != nil {
		return err
	}
	s.callout = c
	st := func(f func(natsauth.Stats) int64) func() float64 {
		return func() float64 { return float64(f(c.Stats())) }
	}
	s.metrics.CounterFunc("nats_connects_accepted_total", "NATS MQTT clients the callout authorized.", st(func(x natsauth.Stats) int64 { return x.Accepted }))
	s.metrics.CounterFunc("nats_connects_refused_total", "NATS authorization requests the callout refused.", st(func(x natsauth.Stats) int64 { return x.Refused }))
	s.metrics.CounterFunc("nats_kicks_total", "NATS clients disconnected (token expired or revoked).", st(func(x natsauth.Stats) int64 { return x.Kicks }))
	s.metrics.CounterFunc("nats_kick_failures_total", "Disconnect requests NATS did not take (retried).", st(func(x natsauth.Stats) int64 { return x.KickFailures }))
	s.metrics.GaugeFunc("nats_clients", "NATS MQTT clients the callout follows.", func() float64 { return float64(c.Connections()) })
	s.metrics.GaugeFunc("nats_connected", "1 while the callout's NATS connections are up.", func() float64 {
		if c.Connected() {
			return 1
		}
		return 0
	})
	return nil
}

// Callout returns the NATS callout (nil if not configured).
func (s *Server) Callout() *natsauth.Callout { return s.callout }
