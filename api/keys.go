package api

import (
	"crypto/sha256"
	"fmt"
	"hash"
	"slices"
	"sync"
)

// Role is what an access key may do.
type Role string

// Roles of access keys (SPEC §2.1).
const (
	// RoleAdmin may call every action.
	RoleAdmin Role = "admin"
	// RoleBroker may call QueryToken and what a broker needs to follow
	// revocations, nothing else.
	RoleBroker Role = "broker"
)

// AccessKey is a caller's credential.
type AccessKey struct {
	ID     string
	Secret string
	Role   Role
	// Instances limits the key to these instance IDs; empty means every
	// instance the service serves.
	Instances []string
}

// key is an AccessKey as the server holds it, with its HMACs.
type key struct {
	AccessKey
	macs [2]sync.Pool // *signers: HMAC-SHA1 and HMAC-SHA256 keyed with Secret+"&", reused across requests
}

// MinSecretLength is the shortest access key secret accepted.
const MinSecretLength = 16

// Keys is an immutable set of access keys, by ID.
type Keys struct {
	byID map[string]*key
}

// NewKeys validates keys and indexes them by ID.
func NewKeys(keys []AccessKey) (*Keys, error) {
	ks := &Keys{byID: make(map[string]*key, len(keys))}
	for i := range keys {
		k := &keys[i]
		switch {
		case k.ID == "":
			return nil, fmt.Errorf("access key %d: empty id", i+1)
		case len(k.Secret) < MinSecretLength:
			return nil, fmt.Errorf("access key %q: secret shorter than %d characters", k.ID, MinSecretLength)
		case k.Role != RoleAdmin && k.Role != RoleBroker:
			return nil, fmt.Errorf("access key %q: role %q, want admin or broker", k.ID, k.Role)
		}
		if _, dup := ks.byID[k.ID]; dup {
			return nil, fmt.Errorf("access key %q: defined twice", k.ID)
		}
		kk := &key{AccessKey: AccessKey{ID: k.ID, Secret: k.Secret, Role: k.Role, Instances: slices.Clone(k.Instances)}}
		for i, method := range []string{SignatureHMACSHA1, SignatureHMACSHA256} {
			kk.macs[i].New = func() any { return &signer{mac: newMAC(method, kk.Secret)} }
		}
		ks.byID[k.ID] = kk
	}
	return ks, nil
}

// Len returns the number of keys.
func (ks *Keys) Len() int { return len(ks.byID) }

func (ks *Keys) lookup(id string) *key { return ks.byID[id] }

// allowsInstance reports whether the key may use instance.
func (k *AccessKey) allowsInstance(instance string) bool {
	return len(k.Instances) == 0 || slices.Contains(k.Instances, instance)
}

// signer is a key's HMAC for one signature method with the buffers a
// signature check uses, so that a check allocates nothing.
type signer struct {
	mac hash.Hash
	sts []byte            // the StringToSign
	sum [sha256.Size]byte // the MAC (SHA-1's or SHA-256's)
	enc [base64Len]byte   // the MAC in base64
}

// signer returns a reset signer of the key for a signature method (nil if
// the method is unknown); give it back with putSigner.
func (k *key) signer(method string) *signer {
	i := 0
	switch method {
	case SignatureHMACSHA1:
	case SignatureHMACSHA256:
		i = 1
	default:
		return nil
	}
	sg := k.macs[i].Get().(*signer)
	sg.mac.Reset()
	return sg
}

func (k *key) putSigner(method string, sg *signer) {
	if cap(sg.sts) > 4096 {
		sg.sts = nil // not kept for the next request: one with huge parameters
	}
	if method == SignatureHMACSHA256 {
		k.macs[1].Put(sg)
	} else {
		k.macs[0].Put(sg)
	}
}
