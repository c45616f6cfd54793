package tokens

import (
	"sync"

	"github.com/consoleproxy/consoleproxy/relay/reuse"
)

// Takeover across the fleet orders sessions by generation: each claim's
// script sets consoleproxy:live:<hash> to "<generation> <owner>", one more
// than the holder it replaces, and publishes "t <hash> <generation>". A
// guard ends its claims of the token with an older generation. A claim
// whose script is still running when a message arrives is kept (its
// generation is not known yet); when its answer comes, a generation older
// than one already heard means a newer session took the token meanwhile,
// and it is refused. Two sessions opened at the same moment on two proxies
// thus leave exactly the one Redis ordered last.

// generations is a guard's takeover state: the generation of each claim
// of this process, and the newest generation heard of for each token it
// has claims of.
type generations struct {
	mu     sync.Mutex
	claims map[uint64]uint64    // claim id → its generation
	newest map[reuse.Key]uint64 // token → the newest generation heard or claimed
}

func (t *generations) init() {
	t.claims, t.newest = map[uint64]uint64{}, map[reuse.Key]uint64{}
}

// took records claim id's generation gen on k; false when a newer one was
// already heard of (the claim lost before it began).
func (g *RedisGuard) took(k reuse.Key, id, gen uint64) bool {
	t := &g.gens
	t.mu.Lock()
	defer t.mu.Unlock()
	if gen < t.newest[k] {
		return false
	}
	t.claims[id] = gen
	t.newest[k] = gen
	return true
}

// forget drops claim id of k at its release, and k's newest generation
// once it has no claim left here.
func (g *RedisGuard) forget(k reuse.Key, id uint64) {
	t := &g.gens
	t.mu.Lock()
	delete(t.claims, id)
	t.mu.Unlock()
	if len(g.claims.IDs(k)) == 0 {
		t.mu.Lock()
		if len(g.claims.IDs(k)) == 0 {
			delete(t.newest, k)
		}
		t.mu.Unlock()
	}
}

// takenOver acts on generation gen of k (a message, or the holder read by
// a check): the claims of k here with an older generation end. Tokens
// without a claim here are not recorded (memory stays bounded by the live
// claims); a claim registered after this looked is newer than gen anyway,
// since its script runs after the one that published gen.
func (g *RedisGuard) takenOver(k reuse.Key, gen uint64) {
	if len(g.claims.IDs(k)) == 0 {
		return
	}
	t := &g.gens
	t.mu.Lock()
	if gen > t.newest[k] {
		t.newest[k] = gen
	}
	t.mu.Unlock()
	g.claims.End(k, reuse.TakenOver, func(id uint64) bool {
		t.mu.Lock()
		mine, known := t.claims[id]
		t.mu.Unlock()
		return !known || mine >= gen // still claiming: decided by took
	})
}
