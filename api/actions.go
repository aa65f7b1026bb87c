package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tokenmq/tokenmq/acl"
	"github.com/tokenmq/tokenmq/internal/deadline"
	"github.com/tokenmq/tokenmq/token"
	"github.com/tokenmq/tokenmq/tokenauth"
)

// DefaultPageSize is the ListTokens page size when PageSize is not given.
const DefaultPageSize = 20

func (h *Handler) applyToken(ctx context.Context, c *call) (any, *Error) {
	inst, v, e := h.instanceAnd(c, "Resources", "Actions", "ExpireTime")
	if e != nil {
		return nil, e
	}
	acts, err := token.ParseActions(v[1])
	if err != nil {
		return nil, errorFor(err)
	}
	expMs, e := parseMillis("ExpireTime", v[2])
	if e != nil {
		return nil, e
	}
	var clientIDs []string
	if s, ok := c.ps.get("ClientId"); ok {
		clientIDs = strings.Split(s, ",")
	}
	tok, _, err := h.svc.Apply(ctx, token.ApplyRequest{
		InstanceID: inst, AccessKeyID: c.key.ID, Name: c.ps.value("Name"),
		Resources: strings.Split(v[0], ","), ClientIDs: clientIDs, Actions: acts, ExpireTime: time.UnixMilli(expMs),
	})
	if err != nil {
		return nil, h.serviceError("ApplyToken", err)
	}
	return ApplyTokenResponse{RequestId: c.requestID, Token: tok}, nil
}

// parseMillis parses a Unix time in milliseconds: decimal digits only.
func parseMillis(name, s string) (int64, *Error) {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errInvalidParam(name, "%q is not a Unix time in milliseconds (decimal digits only).", clip(s, 32))
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > 1<<53 {
		return 0, errInvalidParam(name, "%q is out of range for a Unix time in milliseconds.", clip(s, 32))
	}
	return n, nil
}

func (h *Handler) queryToken(ctx context.Context, c *call) (any, *Error) {
	inst, v, e := h.instanceAnd(c, "Token")
	if e != nil {
		return nil, e
	}
	rec, err := h.svc.Query(ctx, inst, v[0])
	if token.IsDenied(err) {
		return QueryTokenResponse{RequestId: c.requestID, TokenStatus: false}, nil
	}
	if err != nil {
		return nil, h.serviceError("QueryToken", err)
	}
	return QueryTokenResponse{
		RequestId: c.requestID, TokenStatus: true, TokenId: rec.ID.String(),
		Actions: rec.Actions.String(), Resources: strings.Join(rec.Resources, ","),
		ExpireTime: rec.ExpireTime.UnixMilli(), AccessKeyId: rec.AccessKeyID, ClientId: strings.Join(rec.ClientIDs, ","),
	}, nil
}

func (h *Handler) revokeToken(ctx context.Context, c *call) (any, *Error) {
	inst, v, e := h.instanceAnd(c, "Token")
	if e != nil {
		return nil, e
	}
	if _, err := h.svc.Revoke(ctx, inst, v[0]); err != nil {
		return nil, h.serviceError("RevokeToken", err)
	}
	return RevokeTokenResponse{RequestId: c.requestID}, nil
}

func (h *Handler) listTokens(ctx context.Context, c *call) (any, *Error) {
	inst, e := h.instance(c)
	if e != nil {
		return nil, e
	}
	size, e := pageSize(c)
	if e != nil {
		return nil, e
	}
	recs, next, err := h.svc.List(ctx, inst, size, c.ps.value("NextToken"))
	if err != nil {
		return nil, h.serviceError("ListTokens", err)
	}
	out := ListTokensResponse{RequestId: c.requestID, Tokens: make([]TokenInfo, len(recs)), NextToken: next}
	for i, r := range recs {
		out.Tokens[i] = TokenInfo{
			TokenId: r.ID.String(), Name: displayName(r), Actions: r.Actions.String(),
			Resources: strings.Join(r.Resources, ","), ClientId: strings.Join(r.ClientIDs, ","), ExpireTime: r.ExpireTime.UnixMilli(),
			CreateTime: r.CreateTime.UnixMilli(), Revoked: r.Revoked,
		}
	}
	return out, nil
}

// explainAccess serves ExplainAccess: InstanceId, Token or TokenId, Topic,
// and Operation (publish or subscribe; "Action" names the RPC action).
func (h *Handler) explainAccess(ctx context.Context, c *call) (any, *Error) {
	inst, v, e := h.instanceAnd(c, "Topic", "Operation")
	if e != nil {
		return nil, e
	}
	topic, action := v[0], v[1]
	var need token.Actions
	switch action {
	case "publish":
		need = token.ActionWrite
	case "subscribe":
		need = token.ActionRead
	default:
		return nil, errInvalidParam("Operation", "%q is not publish or subscribe.", clip(action, 32))
	}
	tok, id := c.ps.value("Token"), c.ps.value("TokenId")
	out := ExplainAccessResponse{RequestId: c.requestID, TokenStatus: "unknown"}
	var rec *token.Record
	var err error
	switch {
	case tok != "" && id != "":
		return nil, errInvalidParam("Token", "and TokenId are both given; give one.")
	case tok != "":
		rec, err = h.svc.Inspect(ctx, inst, tok)
	case id != "":
		tid, perr := token.ParseID(id)
		if perr != nil {
			return nil, errorFor(perr)
		}
		rec, err = h.svc.Get(ctx, inst, tid)
	default:
		return nil, errMissingParam("Token")
	}
	switch {
	case token.IsDenied(err):
		out.Reason = "not a token of this instance: " + err.Error()
		return out, nil
	case err != nil:
		return nil, h.serviceError("ExplainAccess", err)
	}
	out.TokenId, out.TokenStatus = rec.ID.String(), rec.Status(h.now())
	if out.TokenStatus != "valid" {
		out.Reason = "the token is " + out.TokenStatus
		return out, nil
	}
	if !rec.Actions.Covers(need) {
		out.Reason = fmt.Sprintf("the token's Actions (%s) do not include %s (%s)", rec.Actions, action, need)
		return out, nil
	}
	resources := rec.Resources
	if clientID, ok := c.ps.get("ClientId"); ok {
		if !token.ClientAllowed(rec.ClientIDs, clientID) {
			out.Reason = fmt.Sprintf("the token is bound to other client IDs (%s): a connection with client ID %q is refused (0x85)",
				strings.Join(rec.ClientIDs, ", "), clip(clientID, 64))
			return out, nil
		}
		resources = tokenauth.ExpandResources(resources, clientID) // as the broker does for that connection
	}
	a, err := acl.Compile(resources)
	if err != nil {
		return nil, h.serviceError("ExplainAccess", err)
	}
	var d acl.Decision
	if need == token.ActionWrite {
		d = a.ExplainPublish(topic)
	} else {
		d = a.ExplainSubscribe(topic)
	}
	out.Allowed, out.Resource, out.Level, out.Reason = d.Allowed, d.Resource, d.Level, d.Reason
	return out, nil
}

// MaxFeedWait is the longest ListRevocations long poll (WaitSeconds).
const MaxFeedWait = 25 * time.Second

// listRevocations serves the revocation feed: InstanceId, After (a NextSeq
// from an earlier answer, default 0) and WaitSeconds (0 to 25: how long to
// wait for a revocation when there is none yet).
func (h *Handler) listRevocations(ctx context.Context, c *call) (any, *Error) {
	inst, e := h.instance(c)
	if e != nil {
		return nil, e
	}
	var after uint64
	if s, ok := c.ps.get("After"); ok {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return nil, errInvalidParam("After", "%q is not a NextSeq (a whole number).", clip(s, 32))
		}
		after = n
	}
	var wait time.Duration
	if s, ok := c.ps.get("WaitSeconds"); ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || time.Duration(n)*time.Second > MaxFeedWait {
			return nil, errInvalidParam("WaitSeconds", "%q is not a whole number from 0 to %d.", clip(s, 32), int(MaxFeedWait/time.Second))
		}
		wait = time.Duration(n) * time.Second
	}
	page, err := h.svc.Feed(ctx, inst, after, wait)
	if err != nil {
		return nil, h.serviceError("ListRevocations", err)
	}
	out := ListRevocationsResponse{RequestId: c.requestID, Revocations: make([]RevocationInfo, len(page.Revocations)),
		NextSeq: page.Next, Head: page.Head, Reset: page.Reset}
	for i, r := range page.Revocations {
		out.Revocations[i] = RevocationInfo{Seq: r.Seq, TokenId: r.ID.String(),
			RevokeTime: r.RevokeTime.UnixMilli(), ExpireTime: r.ExpireTime.UnixMilli()}
	}
	for _, k := range page.Kicks {
		out.Kicks = append(out.Kicks, KickInfo{Seq: k.Seq, ClientId: k.ClientID, KickTime: k.RevokeTime.UnixMilli(),
			ExpireTime: k.ExpireTime.UnixMilli()})
	}
	return out, nil
}

// serviceError maps a service error and logs the ones that are not the caller's fault.
func (h *Handler) serviceError(action string, err error) *Error {
	e := errorFor(err)
	if e.Status >= 500 {
		h.log.Error("token service failed", "action", action, "err", err)
	}
	return e
}

func displayName(r *token.Record) string {
	if r.Name != "" {
		return r.Name
	}
	return r.ID.String()
}

// serveUCloud serves GetURocketMQToken in the UCloud envelope (always HTTP
// 200) and returns the RetCode as a metric label.
func (h *Handler) serveUCloud(w http.ResponseWriter, r *http.Request, ps params) string {
	resp := GetURocketMQTokenResponse{Action: ucloudAction + "Response"}
	tok, e := h.getURocketMQToken(r.Context(), ps)
	if e != nil {
		resp.RetCode, resp.Message = e.RetCode, e.Message
	} else {
		resp.Token = tok
	}
	writeJSON(w, http.StatusOK, resp)
	h.log.Debug("api request", "action", ucloudAction, "ret_code", resp.RetCode)
	if resp.RetCode == RetOK {
		return "OK"
	}
	return "RetCode" + strconv.Itoa(resp.RetCode)
}

func (h *Handler) getURocketMQToken(ctx context.Context, ps params) (*URocketMQToken, *UCloudError) {
	for _, n := range []string{"PublicKey", "Signature"} {
		if ps.value(n) == "" {
			return nil, &UCloudError{RetBadParameter, "Missing " + n}
		}
	}
	key := h.keys.lookup(ps.value("PublicKey"))
	if key == nil {
		return nil, &UCloudError{RetUnknownKey, "PublicKey is not a known access key"}
	}
	if !verifyUCloudSignature(ps, key.Secret, ps.value("Signature")) {
		return nil, &UCloudError{RetBadSignature, "Signature verification failed"}
	}
	if key.Role != RoleAdmin {
		return nil, &UCloudError{RetPermission, "access key of role " + string(key.Role) + " may not call " + ucloudAction}
	}
	if allowed, err := h.limiters.allow(ctx, &key.AccessKey, classOther, h.now()); err != nil {
		h.log.Error("shared rate limit unavailable", "err", err)
		return nil, &UCloudError{RetInternal, "internal error; try again later"}
	} else if !allowed {
		return nil, &UCloudError{RetRateLimited, "too many requests; try again later"}
	}
	for _, n := range []string{"ServiceId", "TokenId"} {
		if ps.value(n) == "" {
			return nil, &UCloudError{RetBadParameter, "Missing " + n}
		}
	}
	display := false
	switch d := ps.value("Display"); d {
	case "", "false":
	case "true":
		display = true
	default:
		return nil, &UCloudError{RetBadParameter, "Display must be true or false, not " + strconv.Quote(clip(d, 16))}
	}
	inst := ps.value("ServiceId")
	if !key.allowsInstance(inst) || !h.svc.Serves(inst) {
		return nil, &UCloudError{RetInstance, "this access key may not use ServiceId " + strconv.Quote(clip(inst, 64)) + ", or it is not served here"}
	}
	id, err := token.ParseID(ps.value("TokenId"))
	if err != nil {
		var pe *token.ParamError
		errors.As(err, &pe)
		return nil, &UCloudError{RetBadParameter, "TokenId " + pe.Msg}
	}
	dctx := deadline.WithTimeout(ctx, defaultActionTimeout)
	defer dctx.Release()
	rec, err := h.svc.Get(dctx, inst, id)
	if errors.Is(err, token.ErrNotFound) {
		return nil, &UCloudError{RetTokenNotFound, "no token " + id.String() + " in ServiceId " + strconv.Quote(inst)}
	}
	if err != nil {
		h.log.Error("token service failed", "action", ucloudAction, "err", err)
		return nil, &UCloudError{RetInternal, "internal error; try again later"}
	}
	out := &URocketMQToken{
		TokenId: rec.ID.String(), ServiceId: rec.InstanceID, Name: displayName(rec), Type: rec.Actions.String(),
		AllowProduceTopicList: []string{}, AllowConsumeTopicList: []string{},
		TopicProducePerm: "deny", TopicConsumePerm: "deny",
		AKSK:       AKSK{AccessKey: rec.ID.String(), SecretKey: "********"},
		CreateTime: rec.CreateTime.Unix(), ModifyTime: rec.ModifyTime.Unix(),
		Status: rec.Status(h.now()), ExpireTime: rec.ExpireTime.Unix(),
	}
	if rec.Actions.Covers(token.ActionWrite) {
		out.AllowProduceTopicList, out.TopicProducePerm = rec.Resources, "allow"
	}
	if rec.Actions.Covers(token.ActionRead) {
		out.AllowConsumeTopicList, out.TopicConsumePerm = rec.Resources, "allow"
	}
	if display {
		s, err := h.svc.Reveal(rec)
		if err != nil {
			h.log.Error("cannot rebuild token for display", "token_id", rec.ID.String(), "err", err)
			return nil, &UCloudError{RetInternal, "the server key of this token is gone; it cannot be displayed"}
		}
		out.AKSK.SecretKey = s
	}
	return out, nil
}
