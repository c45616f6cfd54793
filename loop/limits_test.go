//go:build linux

package loop

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

func TestSessionsForFDs(t *testing.T) {
	for _, tc := range []struct {
		nofile uint64
		want   int
	}{
		{0, 1}, {256, 1}, {257, 1}, {258, 1}, {260, 2}, {1024, 384}, {20000, 9872},
		{1 << 20, (1<<20 - 256) / 2}, {^uint64(0), 1<<31 - 1}, // RLIM_INFINITY
	} {
		if got := SessionsForFDs(tc.nofile); got != tc.want {
			t.Errorf("SessionsForFDs(%d) = %d, want %d", tc.nofile, got, tc.want)
		}
	}
}

func addr(i int) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, byte(i >> 8), byte(i)}) }

// Per-address counts stop at the cap and an address leaves the table when
// its last session does, also under concurrent use.
func TestAddrCounts(t *testing.T) {
	a := newAddrCounts()
	first, second, third := a.enter(addr(1), 2), a.enter(addr(1), 2), a.enter(addr(1), 2)
	if !first || !second || third {
		t.Fatal("cap 2 not held")
	}
	if !a.enter(addr(2), 2) || a.addresses() != 2 {
		t.Fatalf("addresses %d, want 2", a.addresses())
	}
	a.leave(addr(1))
	if !a.enter(addr(1), 2) {
		t.Fatal("a freed count not reusable")
	}
	a.leave(addr(1))
	a.leave(addr(1))
	a.leave(addr(2))
	if n := a.addresses(); n != 0 {
		t.Fatalf("%d addresses left with no session", n)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				if a.enter(addr(i%50+g), 1000) {
					a.leave(addr(i%50 + g))
				}
			}
		}()
	}
	wg.Wait()
	if n := a.addresses(); n != 0 {
		t.Fatalf("%d addresses leaked", n)
	}
}

// The attempt window: attempts per address stop at the cap, a refund
// gives one back (and drops the address at zero), the minute's turn empties
// it; past its capacity a new address is not tracked (fails open) and
// counted.
func TestFailWindow(t *testing.T) {
	untracked := metrics.NewSet().NewCounter("untracked_total")
	f := newFailWindow(limitShards, untracked) // one address per shard
	t0 := time.Unix(1_800_000_000, 0)          // a minute boundary
	a, ok := f.reserve(addr(1), t0, 2)
	if _, ok2 := f.reserve(addr(1), t0.Add(59*time.Second), 2); !ok || !ok2 || !a.held {
		t.Fatal("two attempts refused under a cap of 2")
	}
	if _, ok := f.reserve(addr(1), t0, 2); ok {
		t.Fatal("third attempt allowed under a cap of 2")
	}
	f.refund(a)
	if _, ok := f.reserve(addr(1), t0, 2); !ok {
		t.Fatal("a refunded attempt still counts")
	}
	if _, ok := f.reserve(addr(1), t0.Add(time.Minute), 2); !ok {
		t.Fatal("the next minute still locked")
	}
	f.refund(a) // of a window gone: nothing to give back
	if n := f.addresses(t0.Add(time.Minute)); n != 1 {
		t.Fatalf("%d addresses, want 1", n)
	}
	var b authTicket
	for i := 2; !b.held; i++ { // an address in another shard than addr(1)'s (full at one)
		b, _ = f.reserve(addr(i), t0.Add(time.Minute), 2)
	}
	f.refund(b)
	if n := f.addresses(t0.Add(time.Minute)); n != 1 {
		t.Fatalf("a refund to zero left the address: %d addresses, want 1", n)
	}
	t1 := t0.Add(2 * time.Minute)
	before := untracked.Get()         // the addresses above that fell in addr(1)'s shard
	for i := range 40 * limitShards { // every shard reached: a miss has odds of 64·e⁻⁴⁰
		if _, ok := f.reserve(addr(i), t1, 1); !ok {
			t.Fatalf("address %d refused on its first attempt", i)
		}
	}
	tracked := f.addresses(t1)
	if tracked != limitShards {
		t.Fatalf("%d addresses tracked, want the capacity %d", tracked, limitShards)
	}
	if got := untracked.Get() - before; got != uint64(40*limitShards-tracked) {
		t.Fatalf("untracked %d, want %d", got, 40*limitShards-tracked)
	}
	if n := f.addresses(t1.Add(time.Minute)); n != 0 {
		t.Fatalf("%d addresses after the window, want 0", n)
	}
}

// --auth-failures-per-ip: N attempts in flight or refused lock an address;
// attempts that were not refused tokens are given back; off, nothing
// locks.
func TestAuthAttempts(t *testing.T) {
	l := newLimits(Config{AuthFailuresPerIP: 3, Now: time.Now}, metrics.NewSet())
	now := time.Now()
	for range 5 { // served sessions give their attempts back
		tk, ok := l.authAttempt(addr(7), now)
		if !ok {
			t.Fatal("locked by attempts that succeeded")
		}
		l.authSettle(tk, ResultOK)
	}
	var inFlight []authTicket
	for i := range 3 {
		tk, ok := l.authAttempt(addr(7), now)
		if !ok {
			t.Fatalf("locked after %d attempts", i)
		}
		inFlight = append(inFlight, tk)
	}
	if _, ok := l.authAttempt(addr(7), now); ok {
		t.Fatal("a fourth attempt while three are in flight")
	}
	if _, ok := l.authAttempt(addr(8), now); !ok {
		t.Fatal("lock not per address")
	}
	l.authSettle(inFlight[0], ResultTokenInUse) // not a refused token: given back
	l.authSettle(inFlight[1], ResultAuthFailed)
	l.authSettle(inFlight[2], ResultAuthFailed)
	if _, ok := l.authAttempt(addr(7), now); !ok {
		t.Fatal("two failures lock a limit of 3")
	}
	if _, ok := l.authAttempt(addr(7), now); ok {
		t.Fatal("three failures do not lock a limit of 3")
	}
	off := newLimits(Config{Now: time.Now}, metrics.NewSet())
	for range 10 {
		tk, ok := off.authAttempt(addr(7), now)
		if !ok {
			t.Fatal("locked with the limit off")
		}
		off.authSettle(tk, ResultAuthFailed)
	}
}

// The pending cap, and no cap below zero.
func TestPendingSlots(t *testing.T) {
	l := newLimits(Config{MaxPending: 2}, metrics.NewSet())
	first, second, third := l.enterPending(), l.enterPending(), l.enterPending()
	if !first || !second || third {
		t.Fatal("cap 2 not held")
	}
	l.leavePending()
	if !l.enterPending() || l.pending.Load() != 2 {
		t.Fatalf("pending %d", l.pending.Load())
	}
	u := newLimits(Config{MaxPending: -1}, metrics.NewSet())
	for range 5000 {
		if !u.enterPending() {
			t.Fatal("capped with MaxPending < 0")
		}
	}
}
