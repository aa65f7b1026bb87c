package boltstore

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tokenmq/tokenmq/token"
)

// recordJSON is the stored form of a token.Record (the ID is the key).
// Times are Unix milliseconds.
type recordJSON struct {
	KeyID       uint32   `json:"kid"`
	Instance    string   `json:"inst"`
	AccessKeyID string   `json:"ak"`
	Name        string   `json:"name,omitempty"`
	Actions     uint8    `json:"act"`
	Resources   []string `json:"res"`
	Expire      int64    `json:"exp"`
	Create      int64    `json:"ct"`
	Modify      int64    `json:"mt"`
	Revoked     bool     `json:"rv,omitempty"`
	RevokeTime  int64    `json:"rvt,omitempty"`
	RevokeSeq   uint64   `json:"rvs,omitempty"`
}

func encodeRecord(r *token.Record) ([]byte, error) {
	rj := recordJSON{
		KeyID: r.KeyID, Instance: r.InstanceID, AccessKeyID: r.AccessKeyID, Name: r.Name,
		Actions: uint8(r.Actions), Resources: r.Resources,
		Expire: r.ExpireTime.UnixMilli(), Create: r.CreateTime.UnixMilli(), Modify: r.ModifyTime.UnixMilli(),
		Revoked: r.Revoked, RevokeSeq: r.RevokeSeq,
	}
	if r.Revoked {
		rj.RevokeTime = r.RevokeTime.UnixMilli()
	}
	return json.Marshal(rj)
}

func decodeRecord(k, v []byte) (*token.Record, error) {
	if len(k) != token.IDLen {
		return nil, fmt.Errorf("token key of %d bytes", len(k))
	}
	var rj recordJSON
	if err := json.Unmarshal(v, &rj); err != nil {
		return nil, fmt.Errorf("token %x: %w", k, err)
	}
	r := &token.Record{
		KeyID: rj.KeyID, InstanceID: rj.Instance, AccessKeyID: rj.AccessKeyID, Name: rj.Name,
		Actions: token.Actions(rj.Actions), Resources: rj.Resources,
		ExpireTime: time.UnixMilli(rj.Expire), CreateTime: time.UnixMilli(rj.Create), ModifyTime: time.UnixMilli(rj.Modify),
		Revoked: rj.Revoked, RevokeSeq: rj.RevokeSeq,
	}
	if rj.Revoked {
		r.RevokeTime = time.UnixMilli(rj.RevokeTime)
	}
	copy(r.ID[:], k)
	return r, nil
}

type revocationJSON struct {
	ID       []byte `json:"id"`
	Instance string `json:"inst"`
	Revoke   int64  `json:"rvt"`
	Expire   int64  `json:"exp"`
}

func decodeRevocation(k, v []byte) (token.Revocation, error) {
	var rj revocationJSON
	if err := json.Unmarshal(v, &rj); err != nil || len(rj.ID) != token.IDLen || len(k) != 8 {
		return token.Revocation{}, fmt.Errorf("revocation %x: malformed (%v)", k, err)
	}
	rv := token.Revocation{
		Seq: binary.BigEndian.Uint64(k), InstanceID: rj.Instance,
		RevokeTime: time.UnixMilli(rj.Revoke), ExpireTime: time.UnixMilli(rj.Expire),
	}
	copy(rv.ID[:], rj.ID)
	return rv, nil
}
