package api

import (
	"errors"
	"net/url"
	"testing"
	"time"

	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/onsmqtt"
)

// The official Alibaba Cloud Go SDK works against tokenmq unchanged: only
// the endpoint differs.
func TestOfficialAlibabaSDK(t *testing.T) {
	hs := newHarness(t)
	hs.clock.Set(time.Now()) // the SDK stamps requests with the real clock
	u, _ := url.Parse(hs.srv.URL)
	client, err := onsmqtt.NewClientWithAccessKey("cn-hangzhou", adminID, adminSecret)
	if err != nil {
		t.Fatal(err)
	}
	point := func(r *requests.RpcRequest) { r.Domain = u.Host; r.Scheme = "http" }

	apply := onsmqtt.CreateApplyTokenRequest()
	point(apply.RpcRequest)
	apply.InstanceId = "inst-a"
	apply.Resources = "devices/+/telemetry,devices/#"
	apply.Actions = "R,W"
	apply.ExpireTime = requests.NewInteger64(time.Now().Add(time.Hour).UnixMilli())
	applied, err := client.ApplyToken(apply)
	if err != nil {
		t.Fatalf("ApplyToken via SDK: %v", err)
	}
	if applied.Token == "" || applied.RequestId == "" || !applied.IsSuccess() {
		t.Fatalf("ApplyToken response %+v", applied)
	}

	query := onsmqtt.CreateQueryTokenRequest()
	point(query.RpcRequest)
	query.InstanceId = "inst-a"
	query.Token = applied.Token
	queried, err := client.QueryToken(query)
	if err != nil || !queried.TokenStatus {
		t.Fatalf("QueryToken via SDK: %+v, %v", queried, err)
	}

	revoke := onsmqtt.CreateRevokeTokenRequest()
	point(revoke.RpcRequest)
	revoke.InstanceId = "inst-a"
	revoke.Token = applied.Token
	if _, err := client.RevokeToken(revoke); err != nil {
		t.Fatalf("RevokeToken via SDK: %v", err)
	}

	query = onsmqtt.CreateQueryTokenRequest()
	point(query.RpcRequest)
	query.InstanceId = "inst-a"
	query.Token = applied.Token
	if queried, err = client.QueryToken(query); err != nil || queried.TokenStatus {
		t.Fatalf("QueryToken via SDK after revoke: %+v, %v", queried, err)
	}

	// An error the SDK can see: a malformed topic filter.
	bad := onsmqtt.CreateApplyTokenRequest()
	point(bad.RpcRequest)
	bad.InstanceId = "inst-a"
	bad.Resources = "a/#/b"
	bad.Actions = "R"
	bad.ExpireTime = requests.NewInteger64(time.Now().Add(time.Hour).UnixMilli())
	_, err = client.ApplyToken(bad)
	var se *sdkerrors.ServerError
	if !errors.As(err, &se) {
		t.Fatalf("ApplyToken with a bad filter: %v (%T), want *errors.ServerError", err, err)
	}
	if se.ErrorCode() != "InvalidParameter.Resources" || se.HttpStatus() != 400 || se.RequestId() == "" || se.Message() == "" {
		t.Fatalf("ServerError code=%q status=%d request=%q message=%q", se.ErrorCode(), se.HttpStatus(), se.RequestId(), se.Message())
	}

	// A wrong secret: the SDK recognises our SignatureDoesNotMatch message
	// and tells its user the secret is wrong.
	wrong, _ := onsmqtt.NewClientWithAccessKey("cn-hangzhou", adminID, "wrong-secret-0000000")
	q2 := onsmqtt.CreateQueryTokenRequest()
	point(q2.RpcRequest)
	q2.InstanceId = "inst-a"
	q2.Token = applied.Token
	_, err = wrong.QueryToken(q2)
	if !errors.As(err, &se) || se.ErrorCode() != CodeSignatureDoesNotMatch {
		t.Fatalf("QueryToken with a wrong secret: %v", err)
	}
	if se.Recommend() != "InvalidAccessKeySecret: Please check you AccessKeySecret" {
		t.Fatalf("SDK recommendation %q: the server's StringToSign differs from the SDK's", se.Recommend())
	}
}
