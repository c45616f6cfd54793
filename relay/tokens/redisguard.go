package tokens

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
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
	Logger       *slog.Logger
	Now          func() time.Time
}

// RedisGuard is a reuse.Guard shared by every proxy on one Redis.
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
	health outage
	prefix string        // random per guard: owner ids are prefix + a counter
	seq    atomic.Uint64 // owner id counter

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
		releases: make(chan claim, cfg.ReleaseQueue), stop: make(chan struct{}), done: make(chan struct{})}
	g.drops = rateLog{interval: cfg.LogInterval, now: cfg.Now}
	g.losses = rateLog{interval: cfg.LogInterval, now: cfg.Now}
	g.lates = rateLog{interval: cfg.LogInterval, now: cfg.Now}
	if cfg.Policy == reuse.Shared {
		close(g.done)
		return g
	}
	// No retries: a SET NX resent after a lost reply would find its own
	// claim and refuse the client.
	g.rdb = cfg.URL.client(cfg.Timeout, cfg.PoolSize, -1)
	g.health = redisOutage("redis reuse store", cfg.URL, cfg.LogInterval, cfg.Logger, cfg.Now)
	pingRedis(g.rdb, cfg.Timeout, &g.health, "redis reuse store: connected", cfg.URL, cfg.Logger)
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
	return c
}

// Acquire implements reuse.Guard. It blocks on Redis for at most Timeout
// (it runs on a worker). The release it returns never blocks: it may run on
// an event loop.
func (g *RedisGuard) Acquire(k reuse.Key, expires time.Time) (func(), error) {
	switch g.cfg.Policy {
	case reuse.Shared:
		return func() {}, nil
	case reuse.SingleUse:
		return g.acquireOnce(k, expires)
	}
	c := claim{key: redisLivePrefix + Hash(k).Hex(), owner: g.prefix + strconv.FormatUint(g.seq.Add(1), 10)}
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.Timeout)
	defer cancel()
	ok, err := g.rdb.SetNX(ctx, c.key, c.owner, g.cfg.Lease).Result()
	if err != nil {
		g.enqueue(c) // the SET may have landed: undo it, best effort
		return nil, g.unavailable(err, c.key)
	}
	g.health.ok()
	if !ok {
		return nil, reuse.ErrTokenInUse
	}
	g.mu.Lock()
	g.held[c.owner] = c
	g.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { g.release(c) }) }, nil
}

// acquireOnce marks the token used until it expires. A token already past
// its expiry is kept for a second (EXAT must lie in the future).
func (g *RedisGuard) acquireOnce(k reuse.Key, expires time.Time) (func(), error) {
	key := redisUsedPrefix + Hash(k).Hex()
	at := expires
	if soon := g.cfg.Now().Add(time.Second); at.Before(soon) {
		at = soon
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.Timeout)
	defer cancel()
	res, err := g.rdb.SetArgs(ctx, key, "1", redis.SetArgs{Mode: "NX", ExpireAt: at}).Result()
	switch {
	case errors.Is(err, redis.Nil):
		g.health.ok()
		return nil, reuse.ErrTokenInUse
	case err != nil:
		return nil, g.unavailable(err, key)
	case res != "OK":
		return nil, g.unavailable(fmt.Errorf("unexpected SET answer"), key)
	}
	g.health.ok()
	return func() {}, nil
}

// unavailable records an outage and returns Acquire's refusal.
func (g *RedisGuard) unavailable(err error, key string) error {
	reason := describe(err, key)
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

// Close stops the goroutine after running the releases already queued
// (each bounded by Timeout), then closes the client. Idempotent.
func (g *RedisGuard) Close() error {
	g.once.Do(func() { close(g.stop) })
	<-g.done
	if g.rdb == nil {
		return nil
	}
	if g.bg != nil {
		_ = g.bg.Close()
	}
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
