package tokens

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// renewScript extends a claim its owner still holds (answer 1), re-claims a
// key Redis lost, after a restart or a lapse (answer 2), and leaves alone a
// claim another session took meanwhile (answer 0).
var renewScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0`)

// releaseScript deletes a claim only if its owner still holds it.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)

// maxReleaseBatch bounds the releases sent in one pipeline.
const maxReleaseBatch = 256

// run is the guard's one goroutine: it renews every held claim each
// lease/3 and runs queued releases, in order, so a release is never
// followed by a renewal that re-claims the key. It returns after Close,
// once the queue is drained.
func (g *RedisGuard) run() {
	defer close(g.done)
	t := time.NewTicker(g.cfg.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-g.stop:
			g.drain()
			return
		case <-t.C:
			g.renew()
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

// renew extends every held claim in one pipeline.
func (g *RedisGuard) renew() {
	g.mu.Lock()
	batch := make([]claim, 0, len(g.held))
	for _, c := range g.held {
		batch = append(batch, c)
	}
	g.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	answers, err := g.scripts(renewScript, batch)
	if err != nil {
		g.health.fail("renew: " + describe(err, ""))
		return
	}
	g.health.ok()
	g.renewals.Add(1)
	var lost int64
	for _, a := range answers {
		if a == 0 {
			lost++
		}
	}
	if lost > 0 && g.losses.allow() {
		g.cfg.Logger.Warn("redis reuse store: claims of live sessions were taken by other sessions while Redis was unreachable",
			"claims", lost, "lost_total", g.lost.Add(lost))
	} else {
		g.lost.Add(lost)
	}
}

// scripts runs s once per claim (KEYS[1] the key, ARGV[1] the owner,
// ARGV[2] the lease in ms) in one pipeline, loading the script first if
// Redis does not know it (a restart flushes the script cache). It returns
// each call's integer answer.
func (g *RedisGuard) scripts(s *redis.Script, batch []claim) ([]int64, error) {
	cmds, err := g.pipeline(s, batch)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		ctx, cancel := context.WithTimeout(context.Background(), g.cfg.Timeout)
		err = s.Load(ctx, g.rdb).Err()
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
	pipe := g.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(batch))
	for i, c := range batch {
		cmds[i] = s.EvalSha(ctx, pipe, []string{c.key}, c.owner, lease)
	}
	_, err := pipe.Exec(ctx)
	return cmds, err
}
