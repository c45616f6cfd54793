package tokens

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// renewScript renews a batch of claims in one call: KEYS the keys, ARGV
// their owners in the same order, then the lease in ms. For each key it
// extends a claim its owner still holds (answer 1), re-claims a key Redis
// lost, after a restart or a lapse (answer 2), and leaves alone a claim
// another session took meanwhile (answer 0). One call per batch rather
// than one per claim: a quarter of the client's allocations and 60% of
// the bytes (DECISIONS.md). Its keys need not share a hash slot: the
// reuse store is one Redis, not a cluster.
var renewScript = redis.NewScript(`
local lease = ARGV[#KEYS + 1]
local out = {}
for i, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if v == ARGV[i] then
    redis.call('PEXPIRE', k, lease)
    out[i] = 1
  elseif not v then
    redis.call('SET', k, ARGV[i], 'PX', lease)
    out[i] = 2
  else
    out[i] = 0
  end
end
return out`)

// releaseScript deletes a claim only if its owner still holds it.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)

// maxReleaseBatch bounds the releases sent in one pipeline.
const maxReleaseBatch = 256

// maxRenewBatch bounds the claims renewed in one script call. Each batch
// has its own deadline (Timeout), so a slow or failed batch costs only its
// own claims one renewal, retried at the next slot, and a round of 20,000
// claims is 40 round trips of about 63 KB each instead of one 4 MB
// pipeline that had to finish within one deadline (DECISIONS.md). Redis
// runs one call for well under a millisecond, so it never stalls other
// clients for long.
const maxRenewBatch = 500

// renewSpread is the share of the renewal interval (lease/3) a round's
// batches are spread over: 1/renewSpread. The rest of the interval is left
// for the retries of failed batches, so one failure still renews every
// claim within its round.
const renewSpread = 2

// renewRound is the renewals of one round not yet done, in order, the
// time between two slots and when the next slot is due.
type renewRound struct {
	queue []claim
	gap   time.Duration
	next  time.Time
}

// run is the guard's one goroutine: every lease/3 it starts a round that
// renews every held claim, in batches of maxRenewBatch, one batch per slot,
// the slots spread over the first 1/renewSpread of the interval; between
// slots it runs queued releases. One goroutine, so a release is never
// followed by a renewal that re-claims the key. It returns after Close,
// once the queue is drained.
func (g *RedisGuard) run() {
	defer close(g.done)
	interval := g.cfg.Lease / 3
	rounds := time.NewTicker(interval)
	defer rounds.Stop()
	slot := time.NewTimer(interval)
	slot.Stop()
	defer slot.Stop()
	var r renewRound
	for {
		select {
		case <-g.stop:
			g.drain()
			return
		case <-rounds.C:
			g.startRound(&r, interval/renewSpread)
			slot.Reset(0)
		case <-slot.C:
			if g.renewSlot(&r) {
				// Slots keep their cadence: one due while a slow batch
				// ran goes at once.
				r.next = r.next.Add(r.gap)
				slot.Reset(time.Until(r.next))
			}
		case c := <-g.releases:
			g.releaseBatch(c)
		}
	}
}

// drain runs what is queued at Close.
func (g *RedisGuard) drain() {
	for {
		select {
		case c := <-g.releases:
			g.releaseBatch(c)
		default:
			return
		}
	}
}

// releaseBatch deletes c and whatever else is queued, up to
// maxReleaseBatch, in one pipeline. A failure leaves the claims to lapse.
func (g *RedisGuard) releaseBatch(c claim) {
	batch := []claim{c}
more:
	for len(batch) < maxReleaseBatch {
		select {
		case c := <-g.releases:
			batch = append(batch, c)
		default:
			break more
		}
	}
	if _, err := g.scripts(releaseScript, batch); err != nil {
		g.health.fail("release: " + describe(err, ""))
	}
}

// startRound queues every held claim for renewal, spread over window. The
// claims a late round left (Redis slow or down) go first; the overrun is
// logged at most once per LogInterval.
func (g *RedisGuard) startRound(r *renewRound, window time.Duration) {
	g.mu.Lock()
	queue := make([]claim, 0, len(g.held))
	for _, c := range r.queue {
		if _, ok := g.held[c.owner]; ok {
			queue = append(queue, c)
		}
	}
	late := len(queue)
	seen := make(map[string]struct{}, late)
	for _, c := range queue {
		seen[c.owner] = struct{}{}
	}
	for owner, c := range g.held {
		if _, ok := seen[owner]; !ok {
			queue = append(queue, c)
		}
	}
	g.mu.Unlock()
	if late > 0 && g.lates.allow() {
		g.cfg.Logger.Warn("redis reuse store: a renewal round did not finish within its interval; claims lapse if this lasts a lease",
			"claims_behind", late, "claims", len(queue), "lease", g.cfg.Lease.String())
	}
	r.queue = queue
	r.gap = window / time.Duration(max(1, (len(queue)+maxRenewBatch-1)/maxRenewBatch))
	r.next = time.Now()
}

// renewSlot renews the next batch of the round, the claims still held, in
// one script call with its own deadline. A failed batch stays at the head of
// the queue: it is tried again at the next slot, and the batches after it
// wait one slot. It reports whether the round has more to do.
func (g *RedisGuard) renewSlot(r *renewRound) bool {
	batch := make([]claim, 0, maxRenewBatch)
	n := 0 // queue entries looked at: the batch and the released ones
	g.mu.Lock()
	for ; n < len(r.queue) && len(batch) < maxRenewBatch; n++ {
		if _, ok := g.held[r.queue[n].owner]; ok {
			batch = append(batch, r.queue[n])
		}
	}
	g.mu.Unlock()
	if len(batch) == 0 {
		r.queue = nil
		return false
	}
	answers, err := g.renewBatch(batch)
	if err != nil {
		g.failed.Add(int64(len(batch)))
		g.health.fail("renew: " + describe(err, ""))
		return true
	}
	g.health.ok()
	r.queue = r.queue[n:]
	var lost, lapsed int64
	for _, a := range answers {
		switch a {
		case 0:
			lost++
		case 2:
			lapsed++
		}
	}
	g.lapsed.Add(lapsed)
	if lost > 0 && g.losses.allow() {
		g.cfg.Logger.Warn("redis reuse store: claims of live sessions were taken by other sessions while Redis was unreachable",
			"claims", lost, "lost_total", g.lost.Add(lost))
	} else {
		g.lost.Add(lost)
	}
	if len(r.queue) > 0 {
		return true
	}
	r.queue = nil
	g.renewals.Add(1)
	return false
}

// renewBatch runs renewScript over batch on the goroutine's own connection
// within Timeout (EVALSHA, or EVAL when Redis lost its script cache) and
// returns one answer per claim.
func (g *RedisGuard) renewBatch(batch []claim) ([]int64, error) {
	keys := make([]string, len(batch))
	args := make([]any, len(batch)+1)
	for i, c := range batch {
		keys[i], args[i] = c.key, c.owner
	}
	args[len(batch)] = g.cfg.Lease.Milliseconds()
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.Timeout)
	defer cancel()
	answers, err := renewScript.Run(ctx, g.bg, keys, args...).Int64Slice()
	if err == nil && len(answers) != len(batch) {
		err = fmt.Errorf("renew: %d answers for %d claims", len(answers), len(batch))
	}
	return answers, err
}

// scripts runs s once per claim (KEYS[1] the key, ARGV[1] the owner,
// ARGV[2] the lease in ms) in one pipeline on the goroutine's own
// connection, with its own deadline, loading the script first if
// Redis does not know it (a restart flushes the script cache). It returns
// each call's integer answer.
func (g *RedisGuard) scripts(s *redis.Script, batch []claim) ([]int64, error) {
	cmds, err := g.pipeline(s, batch)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		ctx, cancel := context.WithTimeout(context.Background(), g.cfg.Timeout)
		err = s.Load(ctx, g.bg).Err()
		cancel()
		if err == nil {
			cmds, err = g.pipeline(s, batch)
		}
	}
	if err != nil {
		return nil, err
	}
	out := make([]int64, len(cmds))
	for i, c := range cmds {
		out[i], _ = c.Int64()
	}
	return out, nil
}

func (g *RedisGuard) pipeline(s *redis.Script, batch []claim) ([]*redis.Cmd, error) {
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.Timeout)
	defer cancel()
	lease := g.cfg.Lease.Milliseconds()
	pipe := g.bg.Pipeline()
	cmds := make([]*redis.Cmd, len(batch))
	for i, c := range batch {
		cmds[i] = s.EvalSha(ctx, pipe, []string{c.key}, c.owner, lease)
	}
	_, err := pipe.Exec(ctx)
	return cmds, err
}
