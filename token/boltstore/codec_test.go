package boltstore

import (
	"reflect"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/token"
)

func sampleRecord() *token.Record {
	return &token.Record{
		ID: token.ID{1, 2, 3}, KeyID: 9, InstanceID: "post-cn-1", AccessKeyID: "AK1", Name: "名前",
		Actions: token.ActionReadWrite, Resources: []string{"a/+", "b/#", "ü/x"}, ClientIDs: []string{"GID_pump@@@*", "dev-1"},
		ExpireTime: time.UnixMilli(1_900_000_000_123), CreateTime: time.UnixMilli(1_800_000_000_000),
		ModifyTime: time.UnixMilli(1_800_000_001_000), Revoked: true, RevokeTime: time.UnixMilli(1_800_000_001_000), RevokeSeq: 42,
	}
}

func TestRecordCodecRoundTrip(t *testing.T) {
	for _, r := range []*token.Record{sampleRecord(), {ID: token.ID{7}, InstanceID: "i", Resources: []string{"#"}, Actions: token.ActionRead,
		ExpireTime: time.UnixMilli(5), CreateTime: time.UnixMilli(1), ModifyTime: time.UnixMilli(1)}} {
		b, err := encodeRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeRecord(r.ID[:], b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, r)
		}
	}
}

// Records written before client binding (version 1) still read, with no
// binding.
func TestRecordCodecReadsVersion1(t *testing.T) {
	r := sampleRecord()
	r.ClientIDs = nil
	b, err := encodeRecord(r)
	if err != nil {
		t.Fatal(err)
	}
	v1 := append([]byte{1}, b[1:len(b)-1]...) // version 1: no client ID count at the end
	got, err := decodeRecord(r.ID[:], v1)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("version 1 record:\n got %+v\nwant %+v", got, r)
	}
	if _, err := decodeRecord(r.ID[:], append([]byte{3}, b[1:]...)); err == nil {
		t.Fatal("an unknown version decoded")
	}
}

// FuzzDecodeRecord: whatever bytes a damaged file holds, decoding returns
// an error or a record, never a panic; a record re-encodes to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	b, _ := encodeRecord(sampleRecord())
	f.Add(b)
	f.Add(b[:20])
	f.Add([]byte{recordVersion})
	f.Fuzz(func(t *testing.T, v []byte) {
		id := token.ID{1, 2, 3}
		r, err := decodeRecord(id[:], v)
		if err != nil {
			return
		}
		again, err := encodeRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := decodeRecord(id[:], again)
		if err != nil || !reflect.DeepEqual(r, r2) {
			t.Fatalf("re-encoded record does not decode the same: %v", err)
		}
	})
}

func BenchmarkDecodeRecord100(b *testing.B) {
	r := sampleRecord()
	r.Resources = nil
	for i := range 100 {
		r.Resources = append(r.Resources, "fleet/site-"+string(rune('a'+i%26))+"/+/telemetry")
	}
	v, _ := encodeRecord(r)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeRecord(r.ID[:], v); err != nil {
			b.Fatal(err)
		}
	}
}
