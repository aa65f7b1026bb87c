package tokenauth

import (
	"context"
	"testing"
	"time"

	"github.com/tokenmq/tokenmq/token"
)

// BenchmarkCacheHit is a CONNECT's validation when the token is cached.
func BenchmarkCacheHit(b *testing.B) {
	v := &fakeValidator{grants: map[string]token.Grant{}}
	tok := "AQAAAAHSOnBC1MlXIJQFnXksMS-GAAABogX_oYEceAi-dTnN4fHltl1m5Je4GlqeSwPukhfglEjAGi98Ww"
	v.grants[tok] = token.Grant{TokenID: token.ID{1}, InstanceID: "inst", Actions: token.ActionRead,
		Resources: []string{"a/#"}, ExpireTime: time.Now().Add(time.Hour)}
	c, err := NewCache(v, "inst", CacheConfig{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Lookup(context.Background(), tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseCredentials is the CONNECT's username/password parsing.
func BenchmarkParseCredentials(b *testing.B) {
	user, pass := []byte("Token|AK1|inst"), []byte("R|"+tok1+"|W|"+tok2)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseCredentials(user, pass, true, true); err != nil {
			b.Fatal(err)
		}
	}
}
