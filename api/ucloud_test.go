package api

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// The worked example of UCloud's "Signature Algorithm" page
// (docs.ucloud.cn/api/summary/signature, English mirror at
// docs.scloudsg.com/en/docs/api/summary/signature).
func TestUCloudSignatureDocumentationExample(t *testing.T) {
	ps := map[string]string{
		"Action":    "DescribeUHostInstance",
		"Region":    "cn-bj2",
		"Limit":     "10",
		"PublicKey": "someone@example.com1296235120854146120",
	}
	const privateKey = "46f09bb9fab4f12dfc160dae12273d5332b5debe"
	if got, want := UCloudSignature(ps, privateKey), "4201919d267504385deb93af19e0197870fed36b"; got != want {
		t.Fatalf("signature %s, documentation says %s", got, want)
	}
	// Signature itself is never part of what is signed.
	ps["Signature"] = "anything"
	if got := UCloudSignature(ps, privateKey); got != "4201919d267504385deb93af19e0197870fed36b" {
		t.Fatalf("Signature parameter changed the signature: %s", got)
	}
}

// ucloudCall signs ps the way the UCloud documentation describes, written out
// by hand here rather than through the code under test.
func ucloudCall(hs *harness, keyID, secret string, ps map[string]string) (int, map[string]any) {
	ps["PublicKey"] = keyID
	names := make([]string, 0, len(ps))
	for k := range ps {
		names = append(names, k)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, k := range names {
		b.WriteString(k + ps[k])
	}
	b.WriteString(secret)
	sum := sha1.Sum([]byte(b.String()))
	ps["Signature"] = hex.EncodeToString(sum[:])
	return hs.do(http.MethodPost, ps)
}

func TestGetURocketMQToken(t *testing.T) {
	hs := newHarness(t)
	ctx := context.Background()
	c := &Client{Endpoint: hs.srv.URL, AccessKeyID: adminID, AccessKeySecret: adminSecret}
	applied, err := c.ApplyToken(ctx, ApplyTokenRequest{InstanceID: "inst-a", Resources: []string{"t/#", "s/+"}, Actions: "W", ExpireTime: hs.clock.Now().Add(time.Hour), Name: "pump-3"})
	if err != nil {
		t.Fatal(err)
	}
	q, _ := c.QueryToken(ctx, "inst-a", applied.Token)
	id := q.TokenId

	params := func(display string) map[string]string {
		return map[string]string{"Action": "GetURocketMQToken", "Region": "cn-zj", "ProjectId": "org-1", "ServiceId": "inst-a", "TokenId": id, "Display": display}
	}
	status, body := ucloudCall(hs, adminID, adminSecret, params("true"))
	if status != 200 || body["RetCode"] != float64(0) || body["Action"] != "GetURocketMQTokenResponse" || body["Message"] != "" {
		t.Fatalf("GetURocketMQToken: %d %v", status, body)
	}
	tk := body["Token"].(map[string]any)
	aksk := tk["AKSK"].(map[string]any)
	for k, want := range map[string]any{
		"TokenId": id, "ServiceId": "inst-a", "Name": "pump-3", "Type": "W",
		"TopicProducePerm": "allow", "TopicConsumePerm": "deny",
		"CreateTime": float64(hs.clock.Now().Unix()), "ModifyTime": float64(hs.clock.Now().Unix()),
	} {
		if tk[k] != want {
			t.Errorf("Token.%s = %v, want %v", k, tk[k], want)
		}
	}
	if p := tk["AllowProduceTopicList"].([]any); len(p) != 2 || p[0] != "s/+" || p[1] != "t/#" {
		t.Errorf("AllowProduceTopicList = %v", p)
	}
	if c := tk["AllowConsumeTopicList"].([]any); len(c) != 0 {
		t.Errorf("AllowConsumeTopicList = %v, want []", c)
	}
	if aksk["AccessKey"] != id || aksk["SecretKey"] != applied.Token {
		t.Errorf("AKSK with Display=true = %v, want the TokenId and the token", aksk)
	}

	_, body = ucloudCall(hs, adminID, adminSecret, params("false"))
	if s := body["Token"].(map[string]any)["AKSK"].(map[string]any)["SecretKey"]; s == applied.Token || s == "" {
		t.Errorf("SecretKey without Display = %v, want a mask", s)
	}

	for _, tc := range []struct {
		name    string
		keyID   string
		secret  string
		ps      map[string]string
		retCode float64
	}{
		{"bad signature", adminID, "wrong-secret-0000000", params("true"), RetBadSignature},
		{"unknown key", "AKNOBODY", adminSecret, params("true"), RetUnknownKey},
		{"broker key", brokerID, brokerSecret, params("true"), RetPermission},
		{"instance not allowed for key", limitedID, limitedSecret, params("true"), RetInstance},
		{"missing TokenId", adminID, adminSecret, edit(params("true"), map[string]string{"TokenId": ""}), RetBadParameter},
		{"missing ServiceId", adminID, adminSecret, edit(params("true"), map[string]string{"ServiceId": ""}), RetBadParameter},
		{"malformed TokenId", adminID, adminSecret, edit(params("true"), map[string]string{"TokenId": "xyz"}), RetBadParameter},
		{"bad Display", adminID, adminSecret, params("yes"), RetBadParameter},
		{"unknown TokenId", adminID, adminSecret, edit(params("true"), map[string]string{"TokenId": strings.Repeat("0", 32)}), RetTokenNotFound},
		{"token of another ServiceId", adminID, adminSecret, edit(params("true"), map[string]string{"ServiceId": "inst-b"}), RetTokenNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := ucloudCall(hs, tc.keyID, tc.secret, tc.ps)
			if status != 200 || body["RetCode"] != tc.retCode || body["Message"] == "" || body["Token"] != nil {
				t.Fatalf("got %d %v, want 200 RetCode %v with a Message", status, body, tc.retCode)
			}
		})
	}
	// A missing Signature is a missing parameter.
	status, body = hs.do(http.MethodPost, map[string]string{"Action": "GetURocketMQToken", "PublicKey": adminID, "ServiceId": "inst-a", "TokenId": id})
	if status != 200 || body["RetCode"] != float64(RetBadParameter) {
		t.Fatalf("without Signature: %d %v", status, body)
	}
}
