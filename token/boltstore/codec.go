package boltstore

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tokenmq/tokenmq/token"
)

// Records are stored in a compact binary form, read on every QueryToken:
//
//	version(1)=1 | key id(4) | actions(1) | flags(1: bit 0 revoked)
//	| expire, create, modify, revoke time (4 x int64 ms) | revoke seq (uint64)
//	| instance, access key, name (uvarint length + bytes each)
//	| resource count (uvarint) | resources (uvarint length + bytes each)
//	| client ID count (uvarint) | client IDs (uvarint length + bytes each)   (version 2)
//
// Version 1 records (written before client binding) have no client IDs and
// are still read. Decoding copies the value once into a string and slices
// every field out of it: three allocations for a token with 100 resources.
const recordVersion = 2

func encodeRecord(r *token.Record) ([]byte, error) {
	n := 1 + 4 + 2 + 4*8 + 8 + 3*binary.MaxVarintLen16 + len(r.InstanceID) + len(r.AccessKeyID) + len(r.Name) + binary.MaxVarintLen32
	for _, res := range r.Resources {
		n += binary.MaxVarintLen32 + len(res)
	}
	n += binary.MaxVarintLen32
	for _, id := range r.ClientIDs {
		n += binary.MaxVarintLen32 + len(id)
	}
	b := make([]byte, 0, n)
	b = append(b, recordVersion)
	b = binary.BigEndian.AppendUint32(b, r.KeyID)
	var flags byte
	if r.Revoked {
		flags |= 1
	}
	b = append(b, byte(r.Actions), flags)
	var revokeMs int64
	if r.Revoked {
		revokeMs = r.RevokeTime.UnixMilli()
	}
	for _, ms := range []int64{r.ExpireTime.UnixMilli(), r.CreateTime.UnixMilli(), r.ModifyTime.UnixMilli(), revokeMs} {
		b = binary.BigEndian.AppendUint64(b, uint64(ms))
	}
	b = binary.BigEndian.AppendUint64(b, r.RevokeSeq)
	for _, s := range []string{r.InstanceID, r.AccessKeyID, r.Name} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	for _, list := range [][]string{r.Resources, r.ClientIDs} {
		b = binary.AppendUvarint(b, uint64(len(list)))
		for _, s := range list {
			b = binary.AppendUvarint(b, uint64(len(s)))
			b = append(b, s...)
		}
	}
	return b, nil
}

func decodeRecord(k, v []byte) (*token.Record, error) {
	if len(k) != token.IDLen {
		return nil, fmt.Errorf("token key of %d bytes", len(k))
	}
	const fixed = 1 + 4 + 2 + 5*8
	if len(v) < fixed || v[0] != 1 && v[0] != recordVersion {
		return nil, fmt.Errorf("token %x: %w", k, errBadRecord)
	}
	s := string(v) // one copy: bbolt's bytes live only as long as the transaction
	r := &token.Record{
		KeyID:   binary.BigEndian.Uint32(v[1:5]),
		Actions: token.Actions(v[5]),
		Revoked: v[6]&1 != 0,
	}
	times := [4]time.Time{}
	for i := range times {
		times[i] = time.UnixMilli(int64(binary.BigEndian.Uint64(v[7+8*i:])))
	}
	r.ExpireTime, r.CreateTime, r.ModifyTime = times[0], times[1], times[2]
	if r.Revoked {
		r.RevokeTime = times[3]
	}
	r.RevokeSeq = binary.BigEndian.Uint64(v[39:47])
	pos := fixed
	str := func() (string, bool) {
		n, w := binary.Uvarint(v[pos:])
		if w <= 0 || uint64(len(v)-pos-w) < n {
			return "", false
		}
		start := pos + w
		pos = start + int(n)
		return s[start:pos], true
	}
	var ok1, ok2, ok3 bool
	r.InstanceID, ok1 = str()
	r.AccessKeyID, ok2 = str()
	r.Name, ok3 = str()
	if !ok1 || !ok2 || !ok3 {
		return nil, fmt.Errorf("token %x: %w", k, errBadRecord)
	}
	list := func(most uint64) ([]string, bool) {
		count, w := binary.Uvarint(v[pos:])
		if w <= 0 || count > most {
			return nil, false
		}
		pos += w
		if count == 0 {
			return nil, true
		}
		out := make([]string, count)
		for i := range out {
			var ok bool
			if out[i], ok = str(); !ok {
				return nil, false
			}
		}
		return out, true
	}
	var ok bool
	if r.Resources, ok = list(token.MaxResources); !ok || len(r.Resources) == 0 {
		return nil, fmt.Errorf("token %x: %w", k, errBadRecord)
	}
	if v[0] >= 2 {
		if r.ClientIDs, ok = list(token.MaxClientIDs); !ok {
			return nil, fmt.Errorf("token %x: %w", k, errBadRecord)
		}
	}
	if pos != len(v) {
		return nil, fmt.Errorf("token %x: %w (trailing bytes)", k, errBadRecord)
	}
	copy(r.ID[:], k)
	return r, nil
}

type revocationJSON struct {
	ID       []byte `json:"id"`
	Instance string `json:"inst"`
	Revoke   int64  `json:"rvt"`
	Expire   int64  `json:"exp"`
	Client   string `json:"cid,omitempty"` // a kick
}

func decodeRevocation(k, v []byte) (token.Revocation, error) {
	var rj revocationJSON
	err := json.Unmarshal(v, &rj)
	idLen := token.IDLen
	if rj.Client != "" {
		idLen = 0 // a kick names a client ID, not a token
	}
	if err != nil || len(rj.ID) != idLen || len(k) != 8 {
		return token.Revocation{}, fmt.Errorf("revocation %x: malformed (%v)", k, err)
	}
	rv := token.Revocation{
		Seq: binary.BigEndian.Uint64(k), InstanceID: rj.Instance,
		RevokeTime: time.UnixMilli(rj.Revoke), ExpireTime: time.UnixMilli(rj.Expire), ClientID: rj.Client,
	}
	copy(rv.ID[:], rj.ID)
	return rv, nil
}
