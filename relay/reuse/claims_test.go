package reuse

import (
	"encoding/binary"
	"errors"
	"runtime"
	"slices"
	"testing"
	"time"
)

// claimBytes bounds the heap one live claim on its own token costs: an
// entry of Claims' map (the key and the first claim inline), with the
// map's slack. A map per token, as before, cost 269 (the test failed there).
const claimBytes = 160

// claimsHeld is how many distinct tokens TestClaimBytes claims: enough
// that the per-claim figure is not noise.
const claimsHeld = 20000

// TestClaimBytes: a live session's claim costs at most claimBytes of heap.
func TestClaimBytes(t *testing.T) {
	var c Claims
	end := func(Reason) {}
	before := heapInUse()
	for i := 0; i < claimsHeld; i++ {
		var k Key
		binary.LittleEndian.PutUint64(k[:], uint64(i))
		c.Add(k, end)
	}
	per := float64(heapInUse()-before) / claimsHeld
	runtime.KeepAlive(&c)
	t.Logf("%.0f B per claim", per)
	if per > claimBytes {
		t.Fatalf("%.0f B of heap per claim, want at most %d", per, claimBytes)
	}
}

func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// Several claims on one token (takeover, no policy): each is found, ended
// and removed on its own, in any order; the token's entry goes with the
// last.
func TestClaimsOfOneToken(t *testing.T) {
	var c Claims
	k := Key{7}
	ended := map[int]Reason{}
	endOf := func(i int) func(Reason) { return func(r Reason) { ended[i] = r } }
	ids := []uint64{c.Add(k, endOf(0)), c.Add(k, endOf(1)), c.Add(k, endOf(2))}
	other := c.Add(Key{8}, endOf(9))
	got := c.IDs(k)
	slices.Sort(got)
	if !slices.Equal(got, ids) || c.Len() != 4 {
		t.Fatalf("ids %v, want %v; len %d", got, ids, c.Len())
	}
	if n := c.End(k, TakenOver, func(id uint64) bool { return id == ids[2] }); n != 2 || len(ended) != 2 || ended[0] != TakenOver || ended[1] != TakenOver {
		t.Fatalf("End with keep: %d called, %v", n, ended)
	}
	c.Remove(k, ids[0]) // the inline one first
	c.Remove(k, ids[0]) // idempotent
	c.Remove(k, other)  // another token's id: not k's
	if got := c.IDs(k); len(got) != 2 || c.Len() != 3 {
		t.Fatalf("after removing the first: ids %v, len %d", got, c.Len())
	}
	if n := c.End(k, Revoked, nil); n != 2 || ended[2] != Revoked {
		t.Fatalf("End: %d called, %v", n, ended)
	}
	c.Remove(k, ids[2])
	c.Remove(k, ids[1])
	if len(c.Keys()) != 1 || c.Len() != 1 || len(c.IDs(k)) != 0 {
		t.Fatalf("after removing all of k: keys %d, len %d", len(c.Keys()), c.Len())
	}
	c.Remove(Key{8}, other)
	if len(c.Keys()) != 0 || c.Len() != 0 {
		t.Fatalf("claims left: keys %d, len %d", len(c.Keys()), c.Len())
	}
	if id := c.Add(k, endOf(3)); id == 0 || c.Len() != 1 {
		t.Fatalf("a new claim after all left: id %d, len %d", id, c.Len())
	}
}

// guardBytes bounds the heap a live session's claim costs in a LocalGuard
// under Exclusive (the default): its entry in Claims and its release
// function. A second map of holders, keyed by token too, cost about 100
// more.
const guardBytes = 224

// TestGuardBytes: a LocalGuard's live claim costs at most guardBytes.
func TestGuardBytes(t *testing.T) {
	g := NewLocalGuard(Exclusive, nil)
	end := func(Reason) {}
	exp := time.Now().Add(time.Hour)
	rels := make([]func(), 0, claimsHeld)
	before := heapInUse()
	for i := 0; i < claimsHeld; i++ {
		var k Key
		binary.LittleEndian.PutUint64(k[:], uint64(i))
		rel, err := g.Acquire(k, exp, end)
		if err != nil {
			t.Fatal(err)
		}
		rels = append(rels, rel)
	}
	per := float64(heapInUse()-before) / claimsHeld
	t.Logf("%.0f B per live claim", per)
	if per > guardBytes {
		t.Fatalf("%.0f B of heap per live claim, want at most %d", per, guardBytes)
	}
	var k0 Key
	if _, err := g.Acquire(k0, exp, end); !errors.Is(err, ErrTokenInUse) {
		t.Fatalf("a held token acquired again: %v", err)
	}
	for _, rel := range rels {
		rel()
	}
	if g.Live() != 0 || g.Len() != 0 {
		t.Fatalf("after every release: %d live, %d entries", g.Live(), g.Len())
	}
	if _, err := g.Acquire(k0, exp, end); err != nil {
		t.Fatalf("a released token: %v", err)
	}
}
