package reuse

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// Policy is --token-reuse: how many sessions one token may open.
type Policy int

// Policies. Exclusive is the default: Nova's proxy lets any number of
// browsers share one console token (seed review: token sharing).
const (
	Exclusive Policy = iota // one live session per token
	SingleUse               // a token opens one session, ever
	Shared                  // Nova's old behaviour: no limit
)

// ParsePolicy parses exclusive, single-use or shared.
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "exclusive", "":
		return Exclusive, nil
	case "single-use":
		return SingleUse, nil
	case "shared":
		return Shared, nil
	}
	return 0, fmt.Errorf("token-reuse must be exclusive, single-use or shared")
}

func (p Policy) String() string {
	switch p {
	case SingleUse:
		return "single-use"
	case Shared:
		return "shared"
	}
	return "exclusive"
}

// ErrTokenInUse refuses a token the policy does not let open another session.
var ErrTokenInUse = errors.New("token already in use")

// Key identifies a token without holding it: its SHA-256.
type Key [32]byte

// Guard enforces a reuse policy: LocalGuard within one process, a fleet-wide
// one (relay/tokens RedisGuard) across proxies sharing a Redis.
type Guard interface {
	// Acquire claims the token for a new session; release gives it back
	// (idempotent). expires is the token's expiry: single-use memory is
	// kept until then. Acquire may block (it runs on a worker). err is
	// ErrTokenInUse when the policy refuses (403); any other error means
	// the guard could not decide, and the client is refused with 503.
	// release must never block: it runs on an event loop.
	Acquire(k Key, expires time.Time) (release func(), err error)
}

// LocalGuard is a Guard within one process. Memory: one entry per live
// session (exclusive) or per token used and not yet expired (single-use);
// expired single-use entries are pruned as new ones arrive, so the map is
// bounded by the tokens issued within one token lifetime.
type LocalGuard struct {
	policy Policy
	now    func() time.Time

	mu      sync.Mutex
	live    map[Key]struct{}  // exclusive
	used    map[Key]time.Time // single-use: expiry of each used token
	sweepAt int               // prune when used grows past this
}

// NewLocalGuard returns a guard for p; now is the clock (nil: time.Now).
func NewLocalGuard(p Policy, now func() time.Time) *LocalGuard {
	if now == nil {
		now = time.Now
	}
	return &LocalGuard{policy: p, now: now, live: map[Key]struct{}{}, used: map[Key]time.Time{}, sweepAt: 1024}
}

// Acquire implements Guard.
func (g *LocalGuard) Acquire(k Key, expires time.Time) (func(), error) {
	switch g.policy {
	case Shared:
		return func() {}, nil
	case SingleUse:
		return g.acquireOnce(k, expires)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, busy := g.live[k]; busy {
		return nil, ErrTokenInUse
	}
	g.live[k] = struct{}{}
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			delete(g.live, k)
			g.mu.Unlock()
		})
	}, nil
}

func (g *LocalGuard) acquireOnce(k Key, expires time.Time) (func(), error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if exp, seen := g.used[k]; seen && now.Before(exp) {
		return nil, ErrTokenInUse
	}
	g.used[k] = expires
	if len(g.used) >= g.sweepAt {
		for key, exp := range g.used {
			if !now.Before(exp) {
				delete(g.used, key)
			}
		}
		g.sweepAt = max(1024, 2*len(g.used))
	}
	return func() {}, nil
}

// Len is the number of entries held (for tests).
func (g *LocalGuard) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.live) + len(g.used)
}
