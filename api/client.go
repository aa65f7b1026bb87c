package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tokenmq/tokenmq/token"
)

// DefaultCallTimeout bounds a Client call whose context has no deadline.
const DefaultCallTimeout = 10 * time.Second

// Client calls a tokenmq token service (or ApsaraMQ's) over HTTP, signing
// every request with an access key. It is safe for concurrent use.
type Client struct {
	// Endpoint is the service's base URL, e.g. http://127.0.0.1:8080.
	Endpoint        string
	AccessKeyID     string
	AccessKeySecret string
	// HTTPClient defaults to http.DefaultClient.
	HTTPClient *http.Client
}

// ApplyTokenRequest is ApplyToken's parameters.
type ApplyTokenRequest struct {
	InstanceID string
	Resources  []string
	Actions    string // R, W or R,W
	ExpireTime time.Time
	Name       string   // optional
	ClientIDs  []string // optional: the client IDs (or "prefix*") that may use the token
}

// ApplyToken issues a token.
func (c *Client) ApplyToken(ctx context.Context, req ApplyTokenRequest) (*ApplyTokenResponse, error) {
	ps := map[string]string{
		"InstanceId": req.InstanceID, "Resources": strings.Join(req.Resources, ","),
		"Actions": req.Actions, "ExpireTime": strconv.FormatInt(req.ExpireTime.UnixMilli(), 10),
	}
	if req.Name != "" {
		ps["Name"] = req.Name
	}
	if req.ClientIDs != nil {
		ps["ClientId"] = strings.Join(req.ClientIDs, ",")
	}
	var out ApplyTokenResponse
	return &out, c.Call(ctx, "ApplyToken", ps, &out)
}

// QueryToken validates a token. An invalid token is TokenStatus false, not an error.
func (c *Client) QueryToken(ctx context.Context, instanceID, tok string) (*QueryTokenResponse, error) {
	var out QueryTokenResponse
	return &out, c.Call(ctx, "QueryToken", map[string]string{"InstanceId": instanceID, "Token": tok}, &out)
}

// RevokeToken revokes a token; revoking it again succeeds.
func (c *Client) RevokeToken(ctx context.Context, instanceID, tok string) (*RevokeTokenResponse, error) {
	var out RevokeTokenResponse
	return &out, c.Call(ctx, "RevokeToken", map[string]string{"InstanceId": instanceID, "Token": tok}, &out)
}

// ListTokens returns one page of token metadata; pageSize 0 takes the default.
func (c *Client) ListTokens(ctx context.Context, instanceID string, pageSize int, nextToken string) (*ListTokensResponse, error) {
	ps := map[string]string{"InstanceId": instanceID}
	if pageSize > 0 {
		ps["PageSize"] = strconv.Itoa(pageSize)
	}
	if nextToken != "" {
		ps["NextToken"] = nextToken
	}
	var out ListTokensResponse
	return &out, c.Call(ctx, "ListTokens", ps, &out)
}

// ExplainAccess asks whether a token (or token ID) may publish or subscribe
// to topic; operation is "publish" or "subscribe"; clientID, if not empty,
// explains it for a connection with that client ID.
func (c *Client) ExplainAccess(ctx context.Context, instanceID, tokenOrID, topic, operation, clientID string) (*ExplainAccessResponse, error) {
	ps := map[string]string{"InstanceId": instanceID, "Topic": topic, "Operation": operation}
	if clientID != "" {
		ps["ClientId"] = clientID
	}
	if _, err := token.ParseID(tokenOrID); err == nil {
		ps["TokenId"] = tokenOrID
	} else {
		ps["Token"] = tokenOrID
	}
	var out ExplainAccessResponse
	return &out, c.Call(ctx, "ExplainAccess", ps, &out)
}

// Validate implements the broker's Validator over QueryToken: the token's
// grant, token.ErrNotFound when the service says it is not valid, or
// another error when the service could not say.
func (c *Client) Validate(ctx context.Context, instanceID, tok string) (token.Grant, error) {
	q, err := c.QueryToken(ctx, instanceID, tok)
	if err != nil {
		return token.Grant{}, err
	}
	if !q.TokenStatus {
		return token.Grant{}, token.ErrNotFound
	}
	g := token.Grant{InstanceID: instanceID, AccessKeyID: q.AccessKeyId, ExpireTime: time.UnixMilli(q.ExpireTime)}
	if g.TokenID, err = token.ParseID(q.TokenId); err != nil {
		return token.Grant{}, fmt.Errorf("QueryToken answered a bad TokenId: %w", err)
	}
	if g.Actions, err = token.ParseActions(q.Actions); err != nil {
		return token.Grant{}, fmt.Errorf("QueryToken answered bad Actions: %w", err)
	}
	if q.Resources == "" {
		return token.Grant{}, errors.New("QueryToken answered no Resources: is the service tokenmq?")
	}
	g.Resources = strings.Split(q.Resources, ",")
	if q.ClientId != "" {
		g.ClientIDs = strings.Split(q.ClientId, ",")
	}
	return g, nil
}

// Feed implements the broker's revocation feed over ListRevocations.
func (c *Client) Feed(ctx context.Context, instanceID string, after uint64, wait time.Duration) (token.FeedPage, error) {
	ps := map[string]string{"InstanceId": instanceID, "After": strconv.FormatUint(after, 10),
		"WaitSeconds": strconv.Itoa(int(wait / time.Second))}
	var out ListRevocationsResponse
	if err := c.Call(ctx, "ListRevocations", ps, &out); err != nil {
		return token.FeedPage{}, err
	}
	page := token.FeedPage{Next: out.NextSeq, Head: out.Head, Reset: out.Reset, Revocations: make([]token.Revocation, 0, len(out.Revocations))}
	for _, r := range out.Revocations {
		id, err := token.ParseID(r.TokenId)
		if err != nil {
			return token.FeedPage{}, fmt.Errorf("ListRevocations answered a bad TokenId: %w", err)
		}
		page.Revocations = append(page.Revocations, token.Revocation{Seq: r.Seq, ID: id, InstanceID: instanceID,
			RevokeTime: time.UnixMilli(r.RevokeTime), ExpireTime: time.UnixMilli(r.ExpireTime)})
	}
	for _, k := range out.Kicks {
		if k.ClientId == "" {
			return token.FeedPage{}, errors.New("ListRevocations answered a kick without a ClientId")
		}
		page.Kicks = append(page.Kicks, token.Revocation{Seq: k.Seq, InstanceID: instanceID, ClientID: k.ClientId,
			RevokeTime: time.UnixMilli(k.KickTime), ExpireTime: time.UnixMilli(k.ExpireTime)})
	}
	return page, nil
}

// SignedURL returns a GET URL for an Alibaba-envelope action, signed now
// with a fresh nonce: usable once, within the timestamp window (curl it).
func (c *Client) SignedURL(actionName string, actionParams map[string]string) (string, error) {
	ps := c.commonParams(actionName)
	for k, v := range actionParams {
		ps[k] = v
	}
	ps["Signature"] = Sign(http.MethodGet, SignatureHMACSHA1, c.AccessKeySecret, ps)
	q := make(url.Values, len(ps))
	for k, v := range ps {
		q.Set(k, v)
	}
	return strings.TrimRight(c.Endpoint, "/") + "/?" + q.Encode(), nil
}

func (c *Client) commonParams(actionName string) map[string]string {
	return map[string]string{
		"Action": actionName, "Format": "JSON", "Version": APIVersion,
		"AccessKeyId": c.AccessKeyID, "SignatureMethod": SignatureHMACSHA1, "SignatureVersion": "1.0",
		"SignatureNonce": uuid.NewString(), "Timestamp": time.Now().UTC().Format(timestampLayout),
	}
}

// Call signs and sends an Alibaba-envelope action with the given action
// parameters and decodes a success body into out. An error response is
// returned as *Error.
func (c *Client) Call(ctx context.Context, actionName string, actionParams map[string]string, out any) error {
	ps := c.commonParams(actionName)
	for k, v := range actionParams {
		ps[k] = v
	}
	ps["Signature"] = Sign(http.MethodPost, SignatureHMACSHA1, c.AccessKeySecret, ps)
	status, body, err := c.post(ctx, ps)
	if err != nil {
		return fmt.Errorf("%s: %w", actionName, err)
	}
	if status != http.StatusOK {
		var eb errorBody
		if json.Unmarshal(body, &eb) != nil || eb.Code == "" {
			return fmt.Errorf("%s: HTTP %d with a body that is not an API error: %s", actionName, status, clip(string(body), 200))
		}
		return &Error{Status: status, Code: eb.Code, Message: eb.Message, RequestID: eb.RequestId}
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s: decoding response: %w", actionName, err)
	}
	return nil
}

// GetURocketMQToken calls GetURocketMQToken (UCloud envelope). display asks
// for the token itself. A non-zero RetCode is returned as *UCloudError.
func (c *Client) GetURocketMQToken(ctx context.Context, instanceID, tokenID string, display bool) (*URocketMQToken, error) {
	ps := map[string]string{
		"Action": ucloudAction, "PublicKey": c.AccessKeyID, "ServiceId": instanceID,
		"TokenId": tokenID, "Display": strconv.FormatBool(display),
	}
	ps["Signature"] = UCloudSignature(ps, c.AccessKeySecret)
	status, body, err := c.post(ctx, ps)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ucloudAction, err)
	}
	var out GetURocketMQTokenResponse
	if err := json.Unmarshal(body, &out); err != nil || status != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d: %s", ucloudAction, status, clip(string(body), 200))
	}
	if out.RetCode != RetOK {
		return nil, &UCloudError{RetCode: out.RetCode, Message: out.Message}
	}
	if out.Token == nil {
		return nil, fmt.Errorf("%s: response without Token", ucloudAction)
	}
	return out.Token, nil
}

func (c *Client) post(ctx context.Context, ps map[string]string) (int, []byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultCallTimeout)
		defer cancel()
	}
	form := make(url.Values, len(ps))
	for k, v := range ps {
		form.Set(k, v)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.Endpoint, "/")+"/", strings.NewReader(form.Encode()))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, body, nil
}
