package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/tokenmq/tokenmq/token"
)

// Clients admin over the API (SPEC §2.2): ListClients and KickClient for
// admins, and ReportClients, by which brokers in other processes tell the
// service their connections (a broker key may call it).

// ClientInfo is one MQTT connection in ListClients and ReportClients.
type ClientInfo struct {
	ClientId        string
	RemoteAddress   string
	ProtocolVersion int      // 4: MQTT 3.1.1, 5: MQTT 5
	TokenIds        []string // the tokens the connection relies on
	ConnectedSince  int64    // Unix ms
	Persistent      bool     // its session outlives the connection
	BrokerId        string   `json:",omitempty"` // the broker it is connected to
	Conn            uint64   `json:",omitempty"` // ReportClients: the connection's number within its broker's reports
}

// ListClientsResponse is the body of ListClients.
type ListClientsResponse struct {
	RequestId  string
	Clients    []ClientInfo
	NextToken  string `json:",omitempty"`
	TotalCount int
}

// KickClientResponse is the body of KickClient: how many connections of the
// client ID brokers had reported when it was kicked.
type KickClientResponse struct {
	RequestId   string
	Connections int
}

// ReportClientsResponse is the body of ReportClients. Resync asks the
// broker for a full report next (the service has no picture of it).
type ReportClientsResponse struct {
	RequestId string
	Resync    bool
}

// KickInfo is a kick in the revocation feed (ListRevocations).
type KickInfo struct {
	Seq        uint64
	ClientId   string
	KickTime   int64 // Unix ms
	ExpireTime int64 // Unix ms: when the log forgets it
}

func clientInfoOf(c token.ClientInfo) ClientInfo {
	ids := make([]string, len(c.TokenIDs))
	for i, id := range c.TokenIDs {
		ids[i] = id.String()
	}
	return ClientInfo{ClientId: c.ClientID, RemoteAddress: c.Remote, ProtocolVersion: int(c.ProtocolVersion), TokenIds: ids,
		ConnectedSince: c.Since.UnixMilli(), Persistent: c.Persistent, BrokerId: c.Broker}
}

func (ci ClientInfo) info() (token.ClientInfo, error) {
	out := token.ClientInfo{Conn: ci.Conn, ClientID: ci.ClientId, Remote: ci.RemoteAddress, ProtocolVersion: byte(ci.ProtocolVersion),
		Since: time.UnixMilli(ci.ConnectedSince), Persistent: ci.Persistent, TokenIDs: make([]token.ID, len(ci.TokenIds))}
	if ci.ProtocolVersion < 3 || ci.ProtocolVersion > 5 {
		return out, fmt.Errorf("connection %d: ProtocolVersion %d is not 3, 4 or 5", ci.Conn, ci.ProtocolVersion)
	}
	if err := token.ValidateClientID(ci.ClientId); err != nil {
		return out, fmt.Errorf("connection %d: %w", ci.Conn, err)
	}
	for i, s := range ci.TokenIds {
		id, err := token.ParseID(s)
		if err != nil {
			return out, fmt.Errorf("connection %d: TokenIds: %w", ci.Conn, err)
		}
		out.TokenIDs[i] = id
	}
	return out, nil
}

// listClients serves ListClients: InstanceId, optional TokenId, ClientId,
// PageSize (1 to 100, default 20) and NextToken.
func (h *Handler) listClients(ctx context.Context, c *call) (any, *Error) {
	inst, e := h.instance(c)
	if e != nil {
		return nil, e
	}
	size, e := pageSize(c)
	if e != nil {
		return nil, e
	}
	var f token.ClientFilter
	if s, ok := c.ps.get("TokenId"); ok {
		id, err := token.ParseID(s)
		if err != nil {
			return nil, errInvalidParam("TokenId", "%q is not a token ID (%v).", clip(s, 64), err)
		}
		f.TokenID = &id
	}
	if s, ok := c.ps.get("ClientId"); ok {
		if err := token.ValidateClientID(s); err != nil {
			return nil, errorFor(err)
		}
		f.ClientID = s
	}
	all, err := h.svc.Clients(ctx, inst, f)
	if err != nil {
		return nil, h.serviceError("ListClients", err)
	}
	start := 0
	if s := c.ps.value("NextToken"); s != "" {
		after, err := decodeClientCursor(s)
		if err != nil {
			return nil, errInvalidParam("NextToken", "%q is not a NextToken from an earlier ListClients answer.", clip(s, 64))
		}
		start, _ = slices.BinarySearchFunc(all, after, func(e, t token.ClientInfo) int {
			if token.CompareClients(e, t) <= 0 {
				return -1 // the cursor's own entry, and those before it, are before the page
			}
			return 1
		})
	}
	page := all[start:min(start+size, len(all))]
	out := ListClientsResponse{RequestId: c.requestID, Clients: make([]ClientInfo, len(page)), TotalCount: len(all)}
	for i, ci := range page {
		out.Clients[i] = clientInfoOf(ci)
	}
	if start+size < len(all) {
		out.NextToken = encodeClientCursor(page[len(page)-1])
	}
	return out, nil
}

// clientCursor is where a ListClients page ends.
type clientCursor struct {
	C string `json:"c"`
	S int64  `json:"s"` // Unix ns
	B string `json:"b"`
	N uint64 `json:"n"`
}

func encodeClientCursor(c token.ClientInfo) string {
	b, _ := json.Marshal(clientCursor{C: c.ClientID, S: c.Since.UnixNano(), B: c.Broker, N: c.Conn})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeClientCursor(s string) (token.ClientInfo, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return token.ClientInfo{}, err
	}
	var c clientCursor
	if err := json.Unmarshal(b, &c); err != nil {
		return token.ClientInfo{}, err
	}
	return token.ClientInfo{ClientID: c.C, Since: time.Unix(0, c.S), Broker: c.B, Conn: c.N}, nil
}

// pageSize reads PageSize: 1 to token.MaxPageSize, default DefaultPageSize.
func pageSize(c *call) (int, *Error) {
	s, ok := c.ps.get("PageSize")
	if !ok {
		return DefaultPageSize, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > token.MaxPageSize {
		return 0, errInvalidParam("PageSize", "%q is not a whole number from 1 to %d.", clip(s, 32), token.MaxPageSize)
	}
	return n, nil
}

// kickClient serves KickClient: InstanceId, ClientId.
func (h *Handler) kickClient(ctx context.Context, c *call) (any, *Error) {
	inst, v, e := h.instanceAnd(c, "ClientId")
	if e != nil {
		return nil, e
	}
	_, n, err := h.svc.KickClient(ctx, inst, v[0])
	if err != nil {
		return nil, h.serviceError("KickClient", err)
	}
	return KickClientResponse{RequestId: c.requestID, Connections: n}, nil
}

// reportClients serves ReportClients: InstanceId, BrokerId, Seq, Full
// (true or false), Connected (a JSON array of ClientInfo, each with its
// Conn) and Gone (a JSON array of Conn numbers).
func (h *Handler) reportClients(ctx context.Context, c *call) (any, *Error) {
	inst, v, e := h.instanceAnd(c, "BrokerId", "Seq")
	if e != nil {
		return nil, e
	}
	r := token.ClientReport{InstanceID: inst, Broker: v[0]}
	seq, err := strconv.ParseUint(v[1], 10, 64)
	if err != nil || seq == 0 {
		return nil, errInvalidParam("Seq", "%q is not a report number (1, 2, 3…).", clip(v[1], 32))
	}
	r.Seq = seq
	switch s := c.ps.value("Full"); s {
	case "", "false":
	case "true":
		r.Full = true
	default:
		return nil, errInvalidParam("Full", "%q is not true or false.", clip(s, 32))
	}
	if s := c.ps.value("Connected"); s != "" {
		var cs []ClientInfo
		if err := json.Unmarshal([]byte(s), &cs); err != nil {
			return nil, errInvalidParam("Connected", "is not a JSON array of connections (%v).", err)
		}
		r.Connected = make([]token.ClientInfo, len(cs))
		for i, ci := range cs {
			if r.Connected[i], err = ci.info(); err != nil {
				return nil, errInvalidParam("Connected", "%v", err)
			}
		}
	}
	if s := c.ps.value("Gone"); s != "" {
		if err := json.Unmarshal([]byte(s), &r.Gone); err != nil {
			return nil, errInvalidParam("Gone", "is not a JSON array of connection numbers (%v).", err)
		}
	}
	err = h.svc.ReportClients(ctx, r)
	if errors.Is(err, token.ErrResync) {
		return ReportClientsResponse{RequestId: c.requestID, Resync: true}, nil
	}
	if err != nil {
		return nil, h.serviceError("ReportClients", err)
	}
	return ReportClientsResponse{RequestId: c.requestID}, nil
}

// ListClients calls ListClients; tokenID and clientID may be empty.
func (c *Client) ListClients(ctx context.Context, instanceID, tokenID, clientID string, pageSize int, nextToken string) (*ListClientsResponse, error) {
	ps := map[string]string{"InstanceId": instanceID}
	for k, v := range map[string]string{"TokenId": tokenID, "ClientId": clientID, "NextToken": nextToken} {
		if v != "" {
			ps[k] = v
		}
	}
	if pageSize > 0 {
		ps["PageSize"] = strconv.Itoa(pageSize)
	}
	var out ListClientsResponse
	return &out, c.Call(ctx, "ListClients", ps, &out)
}

// KickClient calls KickClient.
func (c *Client) KickClient(ctx context.Context, instanceID, clientID string) (*KickClientResponse, error) {
	var out KickClientResponse
	return &out, c.Call(ctx, "KickClient", map[string]string{"InstanceId": instanceID, "ClientId": clientID}, &out)
}

// ReportClients implements the broker's client reports over ReportClients
// (tokenauth.ClientRegistry); token.ErrResync when the service asks for a
// full report.
func (c *Client) ReportClients(ctx context.Context, r token.ClientReport) error {
	ps := map[string]string{"InstanceId": r.InstanceID, "BrokerId": r.Broker, "Seq": strconv.FormatUint(r.Seq, 10),
		"Full": strconv.FormatBool(r.Full)}
	if len(r.Connected) > 0 {
		cs := make([]ClientInfo, len(r.Connected))
		for i, ci := range r.Connected {
			cs[i] = clientInfoOf(ci)
			cs[i].Conn = ci.Conn
		}
		b, err := json.Marshal(cs)
		if err != nil {
			return err
		}
		ps["Connected"] = string(b)
	}
	if len(r.Gone) > 0 {
		b, _ := json.Marshal(r.Gone)
		ps["Gone"] = string(b)
	}
	var out ReportClientsResponse
	if err := c.Call(ctx, "ReportClients", ps, &out); err != nil {
		return err
	}
	if out.Resync {
		return token.ErrResync
	}
	return nil
}
