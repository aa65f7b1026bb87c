package api

import (
	"fmt"
	"slices"
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

// MinSecretLength is the shortest access key secret accepted.
const MinSecretLength = 16

// Keys is an immutable set of access keys, by ID.
type Keys struct {
	byID map[string]*AccessKey
}

// NewKeys validates keys and indexes them by ID.
func NewKeys(keys []AccessKey) (*Keys, error) {
	ks := &Keys{byID: make(map[string]*AccessKey, len(keys))}
	for i := range keys {
		k := keys[i]
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
		k.Instances = slices.Clone(k.Instances)
		ks.byID[k.ID] = &k
	}
	return ks, nil
}

// Len returns the number of keys.
func (ks *Keys) Len() int { return len(ks.byID) }

func (ks *Keys) lookup(id string) *AccessKey { return ks.byID[id] }

// allowsInstance reports whether the key may use instance.
func (k *AccessKey) allowsInstance(instance string) bool {
	return len(k.Instances) == 0 || slices.Contains(k.Instances, instance)
}
