package reuse

import (
	"context"
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
	Takeover                // a new session ends the older one (KubeVirt's way)
)

// ParsePolicy parses exclusive, single-use, shared or takeover.
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "exclusive", "":
		return Exclusive, nil
	case "single-use":
		return SingleUse, nil
	case "shared":
		return Shared, nil
	case "takeover":
		return Takeover, nil
	}
	return 0, fmt.Errorf("token-reuse must be exclusive, single-use, shared or takeover")
}

func (p Policy) String() string {
	switch p {
	case SingleUse:
		return "single-use"
	case Shared:
		return "shared"
	case Takeover:
		return "takeover"
	}
	return "exclusive"
}

// ErrTokenInUse refuses a token the policy does not let open another session.
var ErrTokenInUse = errors.New("token already in use")

// ErrRevoked refuses a token revoked by Revoke (403, like an unknown token).
var ErrRevoked = errors.New("token revoked")

// DefaultRevokedFor is how long a revocation is remembered (refused by
// Acquire, and, in a fleet store, found by a proxy that missed the
// message while it was cut from the store). A proxy cut from the store for
// longer than this can miss a revocation: DECISIONS.md.
const DefaultRevokedFor = 24 * time.Hour

// Key identifies a token without holding it: its SHA-256.
type Key [32]byte

// Reason is why a guard ends a live session.
type Reason int

// Reasons a guard ends a session (each a close 1008 for the client).
const (
	Revoked   Reason = iota // Revoke: the token was revoked
	TakenOver               // Takeover: a newer session opened with the token
)

// Guard enforces a reuse policy: LocalGuard within one process, a fleet-wide
// one (relay/tokens RedisGuard) across proxies sharing a Redis.
type Guard interface {
	// Acquire claims the token for a new session; release gives it back
	// (idempotent). expires is the token's expiry: single-use memory is
	// kept until then. Acquire may block (it runs on a worker). err is
	// ErrTokenInUse when the policy refuses (403), ErrRevoked for a
	// revoked token (403); any other error means the guard could not
	// decide, and the client is refused with 503. release must never
	// block: it runs on an event loop.
	//
	// end ends the session the claim is for (a revocation, a takeover): the
	// guard may call it from any goroutine until release, more than once
	// (the later calls must do nothing), and it must not block. nil: the
	// session cannot be ended.
	Acquire(k Key, expires time.Time, end func(Reason)) (release func(), err error)

	// Revoke refuses k from now on (for DefaultRevokedFor at least) and
	// ends its live sessions: this process's at once, and with a fleet
	// store every proxy's sharing it (within 2 s while they reach it, and
	// as soon as they are back otherwise). An error means the fleet may not
	// have heard: this process's sessions are ended all the same.
	Revoke(ctx context.Context, k Key) error
}

// NonBlocking marks a Guard whose Acquire never waits on I/O or a peer
// (LocalGuard: a map under a lock): with a token store that never blocks
// either, a handshake's lookup can run on the event loop instead of a
// worker.
type NonBlocking interface {
	Guard
	// AcquireNeverBlocks is a marker; it does nothing.
	AcquireNeverBlocks()
}

var _ NonBlocking = (*LocalGuard)(nil)

// Claims is the live claims of one process by token: whom a revocation or
// a takeover ends. Memory: one entry per live session (a token's first
// claim sits in the entry itself: a map of its own per token cost about
// 190 bytes a session; only a token claimed twice at once, under takeover
// or no policy, gets one). Safe for concurrent use; the end functions are
// called outside its lock.
type Claims struct {
	mu  sync.Mutex
	seq uint64
	by  map[Key]claimSet
	n   int
}

// claimSet is the claims of one token: the first inline, any others in
// more. id 0 is no inline claim (ids are never 0).
type claimSet struct {
	id   uint64
	end  func(Reason)
	more map[uint64]func(Reason)
}

func (cs *claimSet) len() int {
	n := len(cs.more)
	if cs.id != 0 {
		n++
	}
	return n
}

// each calls f for every claim of the set.
func (cs *claimSet) each(f func(id uint64, end func(Reason))) {
	if cs.id != 0 {
		f(cs.id, cs.end)
	}
	for id, end := range cs.more {
		f(id, end)
	}
}

// Add registers a claim on k and returns its id (never 0, unique within
// the process).
func (c *Claims) Add(k Key, end func(Reason)) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.by == nil {
		c.by = map[Key]claimSet{}
	}
	c.seq++
	cs := c.by[k]
	switch {
	case cs.id == 0:
		cs.id, cs.end = c.seq, end
	case cs.more == nil:
		cs.more = map[uint64]func(Reason){c.seq: end}
	default:
		cs.more[c.seq] = end
	}
	c.by[k] = cs
	c.n++
	return c.seq
}

// Remove forgets claim id on k (idempotent).
func (c *Claims) Remove(k Key, id uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs, ok := c.by[k]
	if !ok || id == 0 {
		return
	}
	if cs.id == id {
		cs.id, cs.end = 0, nil
	} else if _, ok := cs.more[id]; ok {
		delete(cs.more, id)
	} else {
		return
	}
	c.n--
	if cs.len() == 0 {
		delete(c.by, k)
		return
	}
	c.by[k] = cs
}

// End calls, for every claim of k that keep does not keep (nil keep: every
// claim), its end function with r, and returns how many it called. The
// claims stay registered until their sessions release them.
func (c *Claims) End(k Key, r Reason, keep func(id uint64) bool) int {
	c.mu.Lock()
	var ends []func(Reason)
	cs := c.by[k]
	cs.each(func(id uint64, end func(Reason)) {
		if end != nil && (keep == nil || !keep(id)) {
			ends = append(ends, end)
		}
	})
	c.mu.Unlock()
	for _, end := range ends {
		end(r)
	}
	return len(ends)
}

// IDs is the ids of k's claims.
func (c *Claims) IDs(k Key) []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs := c.by[k]
	ids := make([]uint64, 0, cs.len())
	cs.each(func(id uint64, _ func(Reason)) { ids = append(ids, id) })
	return ids
}

// Keys is every token with a live claim.
func (c *Claims) Keys() []Key {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]Key, 0, len(c.by))
	for k := range c.by {
		keys = append(keys, k)
	}
	return keys
}

// has reports whether k has a live claim.
func (c *Claims) has(k Key) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.by[k]
	return ok
}

// keys is the number of tokens with a live claim.
func (c *Claims) keys() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.by)
}

// Len is the number of live claims.
func (c *Claims) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// LocalGuard is a Guard within one process. Memory: one entry per live
// session, one per token used and not yet expired (single-use) and one per
// revocation for DefaultRevokedFor; expired entries are pruned as new ones
// arrive, so the maps are bounded by the tokens issued (or revoked) within
// one lifetime.
type LocalGuard struct {
	policy Policy
	now    func() time.Time
	claims Claims

	// Exclusive's holder is the token's live claim in claims (added and
	// removed under mu): no map of its own (about 100 bytes a session).
	mu      sync.Mutex
	used    expiring // single-use: used tokens, until their expiry
	revoked expiring // revoked tokens, until when
}

// NewLocalGuard returns a guard for p; now is the clock (nil: time.Now).
func NewLocalGuard(p Policy, now func() time.Time) *LocalGuard {
	if now == nil {
		now = time.Now
	}
	return &LocalGuard{policy: p, now: now, used: newExpiring(), revoked: newExpiring()}
}

// Acquire implements Guard.
// AcquireNeverBlocks marks LocalGuard NonBlocking.
func (g *LocalGuard) AcquireNeverBlocks() {}

func (g *LocalGuard) Acquire(k Key, expires time.Time, end func(Reason)) (func(), error) {
	g.mu.Lock()
	now := g.now()
	if g.revoked.has(k, now) {
		g.mu.Unlock()
		return nil, ErrRevoked
	}
	switch g.policy {
	case SingleUse:
		if g.used.has(k, now) {
			g.mu.Unlock()
			return nil, ErrTokenInUse
		}
		g.used.add(k, expires, now) // pruning expired ones
	case Exclusive:
		if g.claims.has(k) {
			g.mu.Unlock()
			return nil, ErrTokenInUse
		}
	}
	// Registered under g.mu: a Revoke after the check above finds it.
	id := g.claims.Add(k, end)
	g.mu.Unlock()
	if g.policy == Takeover {
		// Ids grow with time: a newer claim, registered meanwhile, stays
		// (its own Acquire ends this one).
		g.claims.End(k, TakenOver, func(other uint64) bool { return other >= id })
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock() // Exclusive's check and this removal are one order
			g.claims.Remove(k, id)
			g.mu.Unlock()
		})
	}, nil
}

// Revoke implements Guard: within this process only.
func (g *LocalGuard) Revoke(_ context.Context, k Key) error {
	g.mu.Lock()
	now := g.now()
	g.revoked.add(k, now.Add(DefaultRevokedFor), now)
	g.mu.Unlock()
	g.claims.End(k, Revoked, nil)
	return nil
}

// Len is the number of entries held (for tests).
func (g *LocalGuard) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := len(g.used.m) + len(g.revoked.m)
	if g.policy == Exclusive || g.policy == Takeover { // the tokens held, as a map of holders counted them
		n += g.claims.keys()
	}
	return n
}

// Live is the number of live claims (for tests).
func (g *LocalGuard) Live() int { return g.claims.Len() }

// expiring is a set of keys each until a time, pruned as it grows.
type expiring struct {
	m       map[Key]time.Time
	sweepAt int // prune m when it grows past this
}

// minSweep is the least size at which an expiring set is pruned: below it
// a sweep would cost more than the entries it could drop.
const minSweep = 1024

func newExpiring() expiring { return expiring{m: map[Key]time.Time{}, sweepAt: minSweep} }

func (e *expiring) has(k Key, now time.Time) bool {
	until, ok := e.m[k]
	return ok && now.Before(until)
}

func (e *expiring) add(k Key, until, now time.Time) {
	e.m[k] = until
	if len(e.m) >= e.sweepAt {
		for key, u := range e.m {
			if !now.Before(u) {
				delete(e.m, key)
			}
		}
		e.sweepAt = max(minSweep, 2*len(e.m))
	}
}
