package api

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimits are per-access-key request rates per second; 0 means unlimited.
type RateLimits struct {
	ApplyToken float64 // ApplyToken; over it: 400 ApplyTokenOverFlow
	QueryToken float64 // QueryToken by admin keys; over it: 400 QueryTokenOverFlow
	// BrokerQueryToken is QueryToken by keys of role broker.
	BrokerQueryToken float64
	Other            float64 // every other action; over it: 400 SystemOverFlow
}

type rateClass uint8

const (
	classApply rateClass = iota
	classQuery
	classOther
)

type limiterKey struct {
	keyID string
	class rateClass
}

// limiters holds one token bucket per (access key, class); each bucket's
// burst is one second's worth.
type limiters struct {
	limits RateLimits
	shared RateStore // counts across replicas when set
	mu     sync.RWMutex
	m      map[limiterKey]*rate.Limiter
}

func newLimiters(l RateLimits, shared RateStore) *limiters {
	return &limiters{limits: l, shared: shared, m: make(map[limiterKey]*rate.Limiter)}
}

func (ls *limiters) rate(k *AccessKey, class rateClass) float64 {
	switch class {
	case classApply:
		return ls.limits.ApplyToken
	case classQuery:
		if k.Role == RoleBroker {
			return ls.limits.BrokerQueryToken
		}
		return ls.limits.QueryToken
	}
	return ls.limits.Other
}

// allow reports whether the key may make one more call of the class now:
// a token bucket in memory, or, shared by replicas, a count per second.
func (ls *limiters) allow(ctx context.Context, k *AccessKey, class rateClass, now time.Time) (bool, error) {
	r := ls.rate(k, class)
	if r <= 0 {
		return true, nil
	}
	if ls.shared != nil {
		n, err := ls.shared.CountCall(ctx, fmt.Sprintf("%s/%d", k.ID, class), now.Truncate(time.Second))
		if err != nil {
			return false, err
		}
		return float64(n) <= math.Ceil(r), nil
	}
	lk := limiterKey{k.ID, class}
	ls.mu.RLock()
	l := ls.m[lk]
	ls.mu.RUnlock()
	if l == nil {
		ls.mu.Lock()
		if l = ls.m[lk]; l == nil {
			l = rate.NewLimiter(rate.Limit(r), max(1, int(r)))
			ls.m[lk] = l
		}
		ls.mu.Unlock()
	}
	return l.AllowN(now, 1), nil
}
