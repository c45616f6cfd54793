package tokens

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consoleproxy/consoleproxy/relay/reuse"
)

// Revocation and takeover across the fleet: Redis pub/sub, backed by keys.
//
// Pub/sub rather than keyspace notifications (DECISIONS.md): it needs no
// server setting (notify-keyspace-events is off by default and often not
// settable on a managed Redis), carries exactly the message (the token's
// hash, and for a takeover the new holder's generation), and costs one PUBLISH per
// revocation. Either is fire-and-forget: a proxy whose subscription was
// down when a message was published never gets it, so the state is also in
// keys (consoleproxy:revoked:<hash> for RevokedFor, the takeover holder in
// consoleproxy:live:<hash>) and every (re)subscription is followed by a
// check of every live claim against them.

// Message kinds on the channel: "r <hash>" (revoked), "t <hash> <gen>"
// (taken over by the claim of generation gen).
const (
	endRevoke   = "r"
	endTakeover = "t"
)

// SubscribeHealth is how long the subscription may be silent before it is
// pinged; silent for subscribeStale pings it is made anew (a connection
// that died without a reset), and the check follows the new subscription.
// It also bounds how late a failed check is retried.
const SubscribeHealth = time.Second

// subscribeStale is how many SubscribeHealth intervals without any answer
// (a pong included) make the subscription stale.
const subscribeStale = 3

// subscribeBackoff bounds the wait between two failed reconnections.
const subscribeBackoff = time.Second

// DefaultSentinelReplicas is how many replicas must hold a claim or a
// revocation (WAIT) before it counts, with a Sentinel URL: a failover then
// promotes a replica that has it (Sentinel picks the replica with the most
// replication data among those it reaches), so no exclusive token is
// admitted twice across a failover. A claim no replica took within
// Timeout/2 is undone and refused with 503.
const DefaultSentinelReplicas = 1

// acquireScript claims a token: KEYS[1] its revoked key, KEYS[2] its claim
// key (absent for shared); ARGV the mode (x exclusive, u single-use, t
// takeover, s shared), the owner, the lease in ms (x) or the expiry in unix
// seconds (u, t), the channel and the takeover message's start. It answers
// -1 for a revoked token, 0 when the policy refuses, 1 when claimed; for
// takeover the claim's generation (one more than the previous holder's,
// stored with the owner as "<generation> <owner>" and published).
var acquireScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then
  return -1
end
local mode = ARGV[1]
if mode == 'x' then
  if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then
    return 1
  end
  return 0
elseif mode == 'u' then
  if redis.call('SET', KEYS[2], '1', 'NX', 'EXAT', ARGV[3]) then
    return 1
  end
  return 0
elseif mode == 't' then
  local prev = redis.call('GET', KEYS[2])
  local gen = 1
  if prev then
    gen = (tonumber(string.match(prev, '^(%d+) ')) or 0) + 1
  end
  redis.call('SET', KEYS[2], gen .. ' ' .. ARGV[2], 'EXAT', ARGV[3])
  if prev then
    redis.call('PUBLISH', ARGV[4], ARGV[5] .. ' ' .. gen)
  end
  return gen
end
return 1`)

// revokeScript records a revocation and publishes it: KEYS[1] the revoked
// key; ARGV the memory in ms, the channel, the message.
var revokeScript = redis.NewScript(`
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1`)

// checkScript reads, for each pair of KEYS (a revoked key, a live key),
// whether the token is revoked (1 or 0) and the live key's holder ("" when
// none, or for another policy's key).
var checkScript = redis.NewScript(`
local out = {}
for i = 1, #KEYS, 2 do
  out[i] = redis.call('EXISTS', KEYS[i])
  local v = false
  if ARGV[1] == 't' then
    v = redis.call('GET', KEYS[i + 1])
  end
  out[i + 1] = v or ''
end
return out`)

// errNotReplicated: fewer replicas than WaitReplicas took a write in time.
var errNotReplicated = errors.New("not replicated in time")

// eval runs s (EVALSHA, EVAL when Redis lost its script cache) on the
// workers' pool. With WaitReplicas, the script (EVAL: no NOSCRIPT round
// trip to wait twice for) and a WAIT of at most Timeout/2 go in one
// pipeline, on one connection; too few replicas is errNotReplicated.
func (g *RedisGuard) eval(ctx context.Context, s *redis.Script, keys []string, args ...any) (any, error) {
	if g.cfg.WaitReplicas == 0 {
		return s.Run(ctx, g.rdb, keys, args...).Result()
	}
	pipe := g.rdb.Pipeline()
	cmd := s.Eval(ctx, pipe, keys, args...)
	wait := pipe.Do(ctx, "WAIT", g.cfg.WaitReplicas, (g.cfg.Timeout / 2).Milliseconds())
	_, _ = pipe.Exec(ctx)
	if err := cmd.Err(); err != nil {
		return nil, err
	}
	n, err := wait.Int64()
	switch {
	case err != nil:
		return nil, err
	case n < int64(g.cfg.WaitReplicas):
		return cmd.Val(), errNotReplicated
	}
	return cmd.Val(), nil
}

// MaxPendingRevocations bounds the revocations kept for a retry while
// Redis cannot be reached; past it the oldest is dropped with a warning.
const MaxPendingRevocations = 4096

// Revoke implements reuse.Guard: this process's sessions of k end at once;
// the revocation is stored (RevokedFor) and published to the fleet in one
// script call bounded by ctx and Timeout. If Redis cannot be reached it
// returns an error wrapping ErrUnavailable and keeps the revocation: the
// subscription's goroutine sends it again within SubscribeHealth until
// Redis takes it, so the fleet hears it once Redis is back.
func (g *RedisGuard) Revoke(ctx context.Context, k reuse.Key) error {
	g.claims.End(k, reuse.Revoked, nil)
	if err := g.publishRevoke(ctx, k); err != nil {
		g.subs.keep(k, g.cfg.Logger)
		return err
	}
	return nil
}

// publishRevoke runs revokeScript for k.
func (g *RedisGuard) publishRevoke(ctx context.Context, k reuse.Key) error {
	hex := Hash(k).Hex()
	ctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	defer cancel()
	_, err := g.eval(ctx, revokeScript, []string{redisRevokedPrefix + hex},
		g.cfg.RevokedFor.Milliseconds(), g.channel, endRevoke+" "+hex)
	if err != nil {
		return g.unavailable(err, k)
	}
	g.health.ok()
	return nil
}

// retryRevokes sends the revocations Redis did not take, oldest first,
// and stops at the first failure. The subscription's goroutine.
func (g *RedisGuard) retryRevokes() {
	for {
		k, ok := g.subs.nextRevoke()
		if !ok {
			return
		}
		if g.publishRevoke(context.Background(), k) != nil {
			return
		}
		g.subs.doneRevoke(k)
	}
}

// PendingRevocations is how many revocations wait for Redis.
func (g *RedisGuard) PendingRevocations() int {
	g.subs.mu.Lock()
	defer g.subs.mu.Unlock()
	return len(g.subs.revokes)
}

// subscription is the listening goroutine's state shared with Close.
type subscription struct {
	mu     sync.Mutex
	ps     *redis.PubSub // the current one; nil between two
	closed bool
	quit   chan struct{}
	done   chan struct{}

	checks  countMu // checks completed (after each subscription)
	heard   countMu // messages acted on
	pending bool    // a check is due (listen's goroutine only)
	// revokes is the revocations Redis did not take yet, oldest first
	// (under mu); at most MaxPendingRevocations.
	revokes []reuse.Key
}

// keep queues k for a retry, dropping the oldest past the bound.
func (s *subscription) keep(k reuse.Key, log *slog.Logger) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Contains(s.revokes, k) {
		return
	}
	if len(s.revokes) >= MaxPendingRevocations {
		s.revokes = s.revokes[1:]
		log.Warn("redis reuse store: too many revocations waiting for Redis; the oldest is dropped (its sessions on other proxies go on)",
			"pending", MaxPendingRevocations)
	}
	s.revokes = append(s.revokes, k)
}

func (s *subscription) nextRevoke() (reuse.Key, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.revokes) == 0 {
		return reuse.Key{}, false
	}
	return s.revokes[0], true
}

func (s *subscription) doneRevoke(k reuse.Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.revokes) > 0 && s.revokes[0] == k {
		s.revokes = s.revokes[1:]
	}
}

// countMu is a counter tests can read.
type countMu struct {
	mu sync.Mutex
	n  int64
}

func (c *countMu) add() {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
}

func (c *countMu) get() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func (s *subscription) init() {
	s.quit, s.done = make(chan struct{}), make(chan struct{})
}

// set makes ps current; false once closed (ps is closed then).
func (s *subscription) set(ps *redis.PubSub) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = ps.Close()
		return false
	}
	s.ps = ps
	return true
}

// drop closes the current subscription.
func (s *subscription) drop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ps != nil {
		_ = s.ps.Close()
		s.ps = nil
	}
}

// close ends the goroutine: its blocked receive returns at once.
func (s *subscription) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	close(s.quit)
	s.drop()
}

// Checks is how many checks of the live claims against Redis have
// completed (one follows every subscription).
func (g *RedisGuard) Checks() int64 { return g.subs.checks.get() }

// Heard is how many revocation and takeover messages the guard acted on.
func (g *RedisGuard) Heard() int64 { return g.subs.heard.get() }

// Live is the number of live claims of this process.
func (g *RedisGuard) Live() int { return g.claims.Len() }

// listen is the subscription's goroutine: it subscribes, acts on the
// messages, and after every (re)subscription checks the live claims.
func (g *RedisGuard) listen() {
	defer close(g.subs.done)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), g.cfg.Timeout)
		ps := g.sub.Subscribe(ctx, g.channel) // a failed connect is retried by Receive
		cancel()
		if !g.subs.set(ps) {
			return
		}
		g.receive(ps)
		g.subs.drop()
		select {
		case <-g.subs.quit:
			return
		default:
		}
	}
}

// receive runs one subscription until Close or until it is stale.
func (g *RedisGuard) receive(ps *redis.PubSub) {
	heard := time.Now()
	backoff := 50 * time.Millisecond
	for {
		if g.subs.pending {
			g.check()
		}
		g.retryRevokes()
		msg, err := ps.ReceiveTimeout(context.Background(), SubscribeHealth)
		select {
		case <-g.subs.quit:
			return
		default:
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if time.Since(heard) >= subscribeStale*SubscribeHealth {
					return // made anew by listen
				}
				ctx, cancel := context.WithTimeout(context.Background(), g.cfg.Timeout)
				_ = ps.Ping(ctx)
				cancel()
				continue
			}
			// Redis down: go-redis dials again at the next receive.
			g.health.fail("subscribe: " + describe(err, ""))
			select {
			case <-g.subs.quit:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, subscribeBackoff)
			continue
		}
		heard, backoff = time.Now(), 50*time.Millisecond
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				g.subs.pending = true // after every (re)connection: what was missed
			}
		case *redis.Message:
			g.handle(m.Payload)
		}
	}
}

// handle acts on one message: ends this process's claims of a revoked
// token, or its claims of a token taken over that are not the holder.
func (g *RedisGuard) handle(payload string) {
	kind, rest, _ := strings.Cut(payload, " ")
	hexKey, gen, _ := strings.Cut(rest, " ")
	var k reuse.Key
	if b, err := hex.DecodeString(hexKey); err != nil || len(b) != len(k) {
		return // not ours; never logged (it may hold a hash)
	} else {
		copy(k[:], b)
	}
	switch kind {
	case endRevoke:
		g.claims.End(k, reuse.Revoked, nil)
	case endTakeover:
		if g.cfg.Policy != reuse.Takeover {
			return
		}
		n, err := strconv.ParseUint(gen, 10, 64)
		if err != nil {
			return
		}
		g.takenOver(k, n)
	default:
		return
	}
	g.subs.heard.add()
}

// check compares every live claim with Redis, in script calls of at most
// maxRenewBatch tokens: a revoked token's claims end; under takeover, the
// claims that are not the holder end. A failure leaves the check pending:
// it is tried again within SubscribeHealth.
func (g *RedisGuard) check() {
	keys := g.claims.Keys()
	mode := ""
	if g.cfg.Policy == reuse.Takeover {
		mode = "t"
	}
	for len(keys) > 0 {
		batch := keys[:min(len(keys), maxRenewBatch)]
		rkeys := make([]string, 0, 2*len(batch))
		for _, k := range batch {
			hex := Hash(k).Hex()
			rkeys = append(rkeys, redisRevokedPrefix+hex, redisLivePrefix+hex)
		}
		ctx, cancel := context.WithTimeout(context.Background(), g.cfg.Timeout)
		v, err := checkScript.Run(ctx, g.rdb, rkeys, mode).Slice()
		cancel()
		if err == nil && len(v) != len(rkeys) {
			err = fmt.Errorf("check: %d answers for %d keys", len(v), len(rkeys))
		}
		if err != nil {
			g.health.fail("check: " + describe(err, ""))
			return
		}
		for i, k := range batch {
			if n, _ := v[2*i].(int64); n == 1 {
				g.claims.End(k, reuse.Revoked, nil)
				continue
			}
			holder, _ := v[2*i+1].(string)
			if gen, _, ok := strings.Cut(holder, " "); ok {
				if n, err := strconv.ParseUint(gen, 10, 64); err == nil {
					g.takenOver(k, n)
				}
			}
		}
		keys = keys[len(batch):]
	}
	g.subs.pending = false
	g.subs.checks.add()
}
