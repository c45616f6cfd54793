package tokens

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consoleproxy/consoleproxy/relay/reuse"
)

// DefaultRedisLease is how long an exclusive claim lives in Redis without a
// renewal (`--lease-ttl`). The guard renews every lease/3, so a claim
// survives two missed renewals; when a proxy dies (or loses Redis) its
// claims lapse within one lease and the token can be opened elsewhere.
// Shorter means faster recovery and more renewal traffic (one pipelined
// script call per live session per lease/3, in batches of maxRenewBatch).
const DefaultRedisLease = 30 * time.Second

// MinRedisLease is the shortest `--lease-ttl`: a renewal round each second,
// and a batch's deadline (DefaultRedisTimeout, 2 s) still within the two
// missed renewals a claim survives.
const MinRedisLease = 3 * time.Second

// DefaultReleaseQueue bounds the releases waiting for the guard's goroutine.
// Past it a release is dropped: its claim lapses with its lease.
const DefaultReleaseQueue = 4096

// RedisGuardConfig configures a RedisGuard (`--reuse-store redis://…`).
type RedisGuardConfig struct {
	URL          RedisURL
	Policy       reuse.Policy
	Lease        time.Duration // exclusive claims; 0 means DefaultRedisLease
	Timeout      time.Duration // one command or pipeline; 0 means DefaultRedisTimeout
	PoolSize     int           // 0 means DefaultRedisPoolSize
	ReleaseQueue int           // 0 means DefaultReleaseQueue
	LogInterval  time.Duration // at most one line per interval per kind of trouble; 0 means DefaultRedisLogInterval
	// RevokedFor is how long a revocation stays in Redis for proxies that
	// were cut from it when it was published; 0 means reuse.DefaultRevokedFor.
	RevokedFor time.Duration
	// WaitReplicas is how many replicas must have a claim or a revocation
	// before it counts (WAIT): 0 means none, or DefaultSentinelReplicas
	// with a Sentinel URL; -1 means none even then.
	WaitReplicas int
	Logger       *slog.Logger
	Now          func() time.Time
}

// RedisGuard is a reuse.Guard shared by every proxy on one Redis.
//
// Every policy: a revocation is SET consoleproxy:revoked:<hash> (for
// RevokedFor) and a PUBLISH on the guard's channel; every guard subscribes
// and ends its claims of the token, and after each (re)subscription checks
// all its live claims against Redis: a proxy cut from Redis when a
// revocation was published learns it when back (redisguard_end.go).
// takeover: Acquire is SET consoleproxy:live:<hash> "<generation> <owner>"
// EXAT <token expiry>, the generation one more than the previous holder's,
// and a PUBLISH of it when there was one; each guard ends its claims of the
// token with an older generation (redisguard_takeover.go).
//
// exclusive: Acquire is SET consoleproxy:live:<hash> <owner> NX PX <lease>;
// the guard's goroutine renews every held claim each lease/3, in pipelines
// of at most maxRenewBatch spread over the first half of that interval, each
// with its own deadline (compare-owner-and-PEXPIRE, re-claiming a key Redis
// lost), and runs the releases (compare-owner-and-DEL), on its own
// connection. single-use: SET consoleproxy:used:<hash>
// 1 NX EXAT <token expiry>; release does nothing. shared: no Redis at all.
//
// When Redis cannot be reached, Acquire refuses with an error wrapping
// ErrUnavailable (never reuse.ErrTokenInUse): deny by default, HTTP 503.
// Live sessions go on; their claims lapse after one lease (docs/fleet.md).
type RedisGuard struct {
	cfg    RedisGuardConfig
	rdb    *redis.Client // Acquire, on the workers
	bg     *redis.Client // the goroutine's own connection: renewals never wait behind a burst of Acquires
	sub    *redis.Client // the subscription's (redisguard_end.go)
	claims reuse.Claims  // every live claim of this process, whatever the policy
	// channel is where revocations and takeovers are published: one per
	// database (PUBLISH ignores the database).
	channel string
	subs    subscription // the subscription's state (redisguard_end.go)
	gens    generations  // takeover (redisguard_takeover.go)
	health  outage
	prefix  string // random per guard: owner ids are prefix + a claim id

	mu   sync.Mutex       // guards held; never held across I/O
	held map[string]claim // by owner id: the exclusive claims to renew

	releases chan claim // to the goroutine; never blocks a sender
	dropped  atomic.Int64
	lost     atomic.Int64
	lapsed   atomic.Int64 // claims found gone at renewal and taken back
	failed   atomic.Int64 // claim renewals in a batch that failed (retried at the next slot)
	renewals atomic.Int64 // renewal rounds completed, every claim renewed (tests)
	drops    rateLog      // the "queue full" line
	losses   rateLog      // the "claims taken" line
	lates    rateLog      // the "round did not finish" line
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
}

// claim is one exclusive lease: the key and the owner id stored in it.
type claim struct{ key, owner string }

var _ reuse.Guard = (*RedisGuard)(nil)

// OpenRedisGuard opens the client and, for exclusive, starts the renewing
// and releasing goroutine. Redis need not be up.
func OpenRedisGuard(cfg RedisGuardConfig) *RedisGuard {
	cfg = cfg.withDefaults()
	var rnd [12]byte
	_, _ = rand.Read(rnd[:])
	g := &RedisGuard{cfg: cfg, prefix: hex.EncodeToString(rnd[:]) + "-", held: map[string]claim{},
		releases: make(chan claim, cfg.ReleaseQueue), stop: make(chan struct{}), done: make(chan struct{}),
		channel: redisEndChannel + strconv.Itoa(cfg.URL.db())}
	g.drops = rateLog{interval: cfg.LogInterval, now: cfg.Now}
	g.losses = rateLog{interval: cfg.LogInterval, now: cfg.Now}
	g.lates = rateLog{interval: cfg.LogInterval, now: cfg.Now}
	// No retries: a SET NX resent after a lost reply would find its own
	// claim and refuse the client.
	g.rdb = cfg.URL.client(cfg.Timeout, cfg.PoolSize, -1)
	g.health = redisOutage("redis reuse store", cfg.URL, cfg.LogInterval, cfg.Logger, cfg.Now)
	pingRedis(g.rdb, cfg.Timeout, &g.health, "redis reuse store: connected", cfg.URL, cfg.Logger)
	g.sub = cfg.URL.client(cfg.Timeout, 1, -1)
	g.subs.init()
	g.gens.init()
	go g.listen()
	if cfg.Policy == reuse.Exclusive {
		g.bg = cfg.URL.client(cfg.Timeout, 1, -1)
		go g.run()
	} else {
		close(g.done)
	}
	return g
}

func (c RedisGuardConfig) withDefaults() RedisGuardConfig {
	r := RedisConfig{Timeout: c.Timeout, PoolSize: c.PoolSize, LogInterval: c.LogInterval, Logger: c.Logger, Now: c.Now}.withDefaults()
	c.Timeout, c.PoolSize, c.LogInterval, c.Logger, c.Now = r.Timeout, r.PoolSize, r.LogInterval, r.Logger, r.Now
	if c.Lease <= 0 {
		c.Lease = DefaultRedisLease
	}
	if c.ReleaseQueue <= 0 {
		c.ReleaseQueue = DefaultReleaseQueue
	}
	if c.RevokedFor <= 0 {
		c.RevokedFor = reuse.DefaultRevokedFor
	}
	switch {
	case c.WaitReplicas < 0:
		c.WaitReplicas = 0
	case c.WaitReplicas == 0 && c.URL.Sentinel():
		c.WaitReplicas = DefaultSentinelReplicas
	}
	return c
}

// Acquire implements reuse.Guard. It blocks on Redis for at most Timeout
// (it runs on a worker). The release it returns never blocks: it may run on
// an event loop. Every policy asks Redis whether the token is revoked, in
// the same script call as its claim (shared: that is the only call).
func (g *RedisGuard) Acquire(k reuse.Key, expires time.Time, end func(reuse.Reason)) (func(), error) {
	// Registered before Redis is asked: a revocation or takeover message
	// that follows the script finds the claim.
	id := g.claims.Add(k, end)
	c := claim{key: g.claimKey(k), owner: g.owner(id)}
	res, err := g.acquire(k, c, expires)
	if err == nil && res >= 1 && g.cfg.Policy == reuse.Takeover && !g.took(k, id, uint64(res)) {
		res = 0 // a newer session took the token over while this one claimed it
	}
	if err != nil || res < 1 {
		g.claims.Remove(k, id)
		if g.cfg.Policy == reuse.Exclusive && err != nil {
			g.enqueue(c) // the SET may have landed: undo it, best effort
		}
	}
	switch {
	case err != nil:
		return nil, g.unavailable(err, k)
	case res == -1:
		return nil, reuse.ErrRevoked
	case res < 1:
		return nil, reuse.ErrTokenInUse
	}
	if g.cfg.Policy == reuse.Exclusive {
		g.mu.Lock()
		g.held[c.owner] = c
		g.mu.Unlock()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			g.claims.Remove(k, id)
			switch g.cfg.Policy {
			case reuse.Exclusive:
				g.release(c)
			case reuse.Takeover:
				g.forget(k, id)
			}
		})
	}, nil
}

// claimKey is the Redis key of the policy's claim on k ("" for shared).
func (g *RedisGuard) claimKey(k reuse.Key) string {
	switch g.cfg.Policy {
	case reuse.Exclusive, reuse.Takeover:
		return redisLivePrefix + Hash(k).Hex()
	case reuse.SingleUse:
		return redisUsedPrefix + Hash(k).Hex()
	}
	return ""
}

// owner is the value a claim stores: the guard's random prefix and the
// claim's id (unique within the process).
func (g *RedisGuard) owner(id uint64) string { return g.prefix + strconv.FormatUint(id, 10) }

// acquire runs acquireScript for c: 1 claimed (takeover: the claim's
// generation, 1 or more), 0 refused by the policy, -1 revoked. A token already past its expiry is kept for a second (EXAT must
// lie in the future).
func (g *RedisGuard) acquire(k reuse.Key, c claim, expires time.Time) (int64, error) {
	hex := Hash(k).Hex()
	at := expires
	if soon := g.cfg.Now().Add(time.Second); at.Before(soon) {
		at = soon
	}
	mode, ttl, msg := "s", int64(0), ""
	switch g.cfg.Policy {
	case reuse.Exclusive:
		mode, ttl = "x", g.cfg.Lease.Milliseconds()
	case reuse.SingleUse:
		mode, ttl = "u", at.Unix()
	case reuse.Takeover:
		mode, ttl, msg = "t", at.Unix(), endTakeover+" "+hex
	}
	keys := []string{redisRevokedPrefix + hex, c.key}
	if c.key == "" {
		keys = keys[:1]
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.Timeout)
	defer cancel()
	v, err := g.eval(ctx, acquireScript, keys, mode, c.owner, ttl, g.channel, msg)
	if err != nil {
		return 0, err
	}
	g.health.ok()
	n, ok := v.(int64)
	if !ok {
		return 0, fmt.Errorf("unexpected answer to the claim")
	}
	return n, nil
}

// unavailable records an outage and returns Acquire's refusal.
func (g *RedisGuard) unavailable(err error, k reuse.Key) error {
	reason := describe(err, Hash(k).Hex()) // in a key or anywhere else in the message
	g.health.fail(reason)
	return fmt.Errorf("%w: reuse store: %s", ErrUnavailable, reason)
}

// release stops renewing c and queues its deletion. It never blocks: with
// the queue full the claim is left to lapse with its lease.
func (g *RedisGuard) release(c claim) {
	g.mu.Lock()
	delete(g.held, c.owner)
	g.mu.Unlock()
	g.enqueue(c)
}

// enqueue hands c to the goroutine without waiting; a drop is counted and
// logged at most once per LogInterval.
func (g *RedisGuard) enqueue(c claim) {
	if g.cfg.Policy != reuse.Exclusive {
		return
	}
	select {
	case g.releases <- c:
		return
	default:
	}
	n := g.dropped.Add(1)
	if g.drops.allow() {
		g.cfg.Logger.Warn("redis reuse store: release queue full; the claim lapses with its lease",
			"dropped_total", n, "lease", g.cfg.Lease.String())
	}
}

// Dropped is how many releases found the queue full (their claims lapsed).
func (g *RedisGuard) Dropped() int64 { return g.dropped.Load() }

// Lost is how many renewals found a claim taken by another session (a
// lease that lapsed while Redis was unreachable).
func (g *RedisGuard) Lost() int64 { return g.lost.Load() }

// Lease is the lease of exclusive claims, defaults applied.
func (g *RedisGuard) Lease() time.Duration { return g.cfg.Lease }

// Lapsed is how many claims of live sessions a renewal found gone from
// Redis (their lease lapsed, or Redis lost them) and took back.
func (g *RedisGuard) Lapsed() int64 { return g.lapsed.Load() }

// RenewalsFailed is how many claim renewals failed with their batch (Redis
// unreachable, slow past Timeout, or an error); each is retried at the next
// slot, and a claim lapses only if its renewals fail for a whole lease.
func (g *RedisGuard) RenewalsFailed() int64 { return g.failed.Load() }

// Close stops the goroutines (the subscription's at once; the renewing one
// after running the releases already queued, each bounded by Timeout),
// then closes the clients. Idempotent.
func (g *RedisGuard) Close() error {
	g.once.Do(func() {
		close(g.stop)
		g.subs.close()
	})
	<-g.done
	<-g.subs.done
	if g.bg != nil {
		_ = g.bg.Close()
	}
	_ = g.sub.Close()
	return g.rdb.Close()
}

// rateLog lets one line through per interval.
type rateLog struct {
	interval time.Duration
	now      func() time.Time
	mu       sync.Mutex
	last     time.Time
}

func (r *rateLog) allow() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if !r.last.IsZero() && now.Sub(r.last) < r.interval {
		return false
	}
	r.last = now
	return true
}
