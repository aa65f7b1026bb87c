package natsauth

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tokenmq/tokenmq/token"
	"github.com/tokenmq/tokenmq/tokenauth"
)

var jsonUnmarshal = json.Unmarshal

// clientEvent is the part of nats-server's $SYS.ACCOUNT.<acc>.CONNECT and
// DISCONNECT advisories (ConnectEventMsg, DisconnectEventMsg) the callout
// reads.
type clientEvent struct {
	Server struct {
		ID string `json:"id"`
	} `json:"server"`
	Client struct {
		ID         uint64 `json:"id"`
		Host       string `json:"host"`
		User       string `json:"user"`
		MQTTClient string `json:"client_id"`
	} `json:"client"`
}

// event follows the account's clients: a disconnect ends the session; a
// connect this callout did not admit (another callout process did, or this
// one before a restart) is taken on.
func (c *Callout) event(m *nats.Msg) {
	var ev clientEvent
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		c.log.Debug("nats advisory not understood", "subject", m.Subject, "err", err)
		return
	}
	key := connKey{ev.Server.ID, ev.Client.ID}
	if strings.HasSuffix(m.Subject, ".DISCONNECT") {
		if k := c.forget(key); k != nil {
			k.end()
		}
		return
	}
	if _, ok := c.known(key); !ok {
		c.adopt(key, ev.Client.MQTTClient, ev.Client.Host, ev.Client.User)
	}
}

// adopt takes on a connection from its NATS user name (identity): its
// tokens are looked up by ID; one that is gone, revoked or expired
// disconnects it now, otherwise it is followed like those admitted here.
func (c *Callout) adopt(key connKey, clientID, remote, user string) {
	form, ak, held, ok := parseIdentity(user)
	if !ok {
		return // not a tokenmq client (a user of the servers' own configuration)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	instance := c.cfg.Authority.InstanceID()
	grants := make([]tokenauth.HeldGrant, 0, len(held))
	for _, h := range held {
		rec, err := c.cfg.Tokens.Get(ctx, instance, h.id)
		switch {
		case token.IsDenied(err) || (err == nil && rec.Check(time.Now()) != nil):
			c.log.Info("nats client holds a token no longer valid; disconnecting", "client", clientID, "token_id", h.id.String())
			c.kick(key, "token no longer valid")
			return
		case err != nil:
			c.log.Warn("nats client not taken on: token service unavailable; retried at the next reconcile", "client", clientID, "err", err)
			return
		}
		grants = append(grants, tokenauth.HeldGrant{Grant: rec.Grant(), Type: h.typ})
	}
	k := &conn{c: c, key: key, since: time.Now()}
	c.mu.Lock()
	if _, dup := c.conns[key]; dup {
		c.mu.Unlock()
		return
	}
	c.conns[key] = k
	c.mu.Unlock()
	c.adopted.Add(1)
	k.follow(c.cfg.Authority.Adopt(clientID, remote, form, ak, grants, k))
}

// connzResponse is nats-server's ServerAPIConnzResponse, what reconcile
// reads of it.
type connzResponse struct {
	Data *struct {
		ID    string `json:"server_id"`
		Total int    `json:"total"`
		Conns []struct {
			Cid            uint64 `json:"cid"`
			IP             string `json:"ip"`
			AuthorizedUser string `json:"authorized_user"`
			MQTTClient     string `json:"mqtt_client"`
		} `json:"connections"`
	} `json:"data"`
	Error *struct {
		Description string `json:"description"`
	} `json:"error"`
}

// reconcile asks every server for the account's connections: those not
// followed yet are taken on (a callout that restarted, or missed
// advisories while NATS was unreachable); those followed that a server no
// longer has are forgotten. Kicks that failed meanwhile are retried by
// housekeeping.
func (c *Callout) reconcile() {
	started := time.Now()
	seen := map[string]map[uint64]bool{}
	const page = 1024
	pages := map[string]int{} // server -> next offset, for servers with more
	collect := func(subject string, opts map[string]any) error {
		body, _ := json.Marshal(opts)
		inbox := c.sysConn.NewRespInbox()
		sub, err := c.sysConn.SubscribeSync(inbox)
		if err != nil {
			return err
		}
		defer sub.Unsubscribe()
		if err := c.sysConn.PublishRequest(subject, inbox, body); err != nil {
			return err
		}
		deadline := time.Now().Add(time.Second)
		for {
			m, err := sub.NextMsg(time.Until(deadline))
			if err != nil {
				return nil // the window is over: every server that answers has
			}
			var r connzResponse
			if json.Unmarshal(m.Data, &r) != nil || r.Data == nil {
				continue
			}
			server := r.Data.ID
			if seen[server] == nil {
				seen[server] = map[uint64]bool{}
			}
			for _, ci := range r.Data.Conns {
				seen[server][ci.Cid] = true
				key := connKey{server, ci.Cid}
				if _, ok := c.known(key); !ok {
					c.adopt(key, ci.MQTTClient, ci.IP, ci.AuthorizedUser)
				}
			}
			off, _ := opts["offset"].(int)
			if next := off + len(r.Data.Conns); next < r.Data.Total && len(r.Data.Conns) > 0 {
				pages[server] = next
			} else {
				delete(pages, server)
			}
			if !strings.Contains(subject, ".PING.") {
				return nil // one server asked, one answer
			}
		}
	}
	opts := func(offset int) map[string]any {
		return map[string]any{"acc": c.cfg.Account, "auth": true, "limit": page, "offset": offset, "state": 0}
	}
	if err := collect("$SYS.REQ.SERVER.PING.CONNZ", opts(0)); err != nil {
		c.log.Warn("nats reconcile failed", "err", err)
		return
	}
	for len(pages) > 0 {
		for server, off := range pages {
			delete(pages, server)
			if err := collect(fmt.Sprintf("$SYS.REQ.SERVER.%s.CONNZ", server), opts(off)); err != nil {
				c.log.Warn("nats reconcile failed", "server", server, "err", err)
				return
			}
		}
	}
	// Forget what a server that answered no longer has; not what was
	// admitted after the question was asked.
	var gone []*conn
	c.mu.Lock()
	for key, k := range c.conns {
		if s, answered := seen[key.server]; answered && !s[key.cid] && k.since.Before(started) {
			gone = append(gone, k)
			delete(c.conns, key)
		}
	}
	c.mu.Unlock()
	for _, k := range gone {
		k.end()
	}
	c.log.Debug("nats reconcile done", "servers", len(seen), "followed", c.Connections(), "forgotten", len(gone))
}

// dollarScanner keeps the '$' first levels the instance's tokens name
// (SPEC §6.2: a wildcard resource is kept out of them), reading the
// token list incrementally: records come oldest first, so each scan reads
// from the last page it saw.
type dollarScanner struct {
	tokens     Tokens
	instanceID string
	mu         sync.Mutex
	cursor     string
	levels     map[string]bool
	list       []string
}

func (d *dollarScanner) get() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.list
}

func (d *dollarScanner) refresh(ctx context.Context, log *slog.Logger) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.levels == nil {
		d.levels = map[string]bool{}
	}
	changed := false
	for {
		recs, next, err := d.tokens.List(ctx, d.instanceID, token.MaxPageSize, d.cursor)
		if err != nil {
			log.Warn("reading the '$' levels of issued tokens failed; retried in a minute", "err", err)
			break
		}
		for _, r := range recs {
			for _, res := range r.Resources {
				if first, _, _ := strings.Cut(res, "/"); isDollar(first) && !d.levels[first] {
					d.levels[first] = true
					changed = true
				}
			}
		}
		if next == "" {
			break // the last page: read again from its start next time
		}
		d.cursor = next
	}
	if changed {
		d.list = make([]string, 0, len(d.levels))
		for l := range d.levels {
			d.list = append(d.list, l)
		}
	}
}
