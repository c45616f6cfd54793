package tokens

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/relay/reuse"
)

// endLog records, per session, the reasons a guard ended it.
type endLog struct {
	mu  sync.Mutex
	got map[string][]reuse.Reason
}

func (e *endLog) fn(name string) func(reuse.Reason) {
	return func(r reuse.Reason) {
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.got == nil {
			e.got = map[string][]reuse.Reason{}
		}
		e.got[name] = append(e.got[name], r)
	}
}

func (e *endLog) of(name string) []reuse.Reason {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]reuse.Reason(nil), e.got[name]...)
}

// endedWith waits until session name was ended for r.
func (e *endLog) endedWith(t testing.TB, name string, r reuse.Reason) {
	t.Helper()
	testutil.CheckFor(t, name+" ended", func() error {
		for _, got := range e.of(name) {
			if got == r {
				return nil
			}
		}
		return fmt.Errorf("%s: ended %v", name, e.of(name))
	})
}

// subscribed waits until g has subscribed and checked its claims once more
// than before.
func subscribed(t testing.TB, g *RedisGuard, before int64) {
	t.Helper()
	testutil.CheckFor(t, "the guard's subscription", func() error {
		if g.Checks() <= before {
			return errors.New("not yet")
		}
		return nil
	})
}

// subscribedPair is two proxies' guards on the Redis at spec, each
// subscribed.
func subscribedPair(t testing.TB, spec string, cfg RedisGuardConfig) (a, b *RedisGuard) {
	t.Helper()
	a, b = guardOn(t, spec, cfg), guardOn(t, spec, cfg)
	subscribed(t, a, 0)
	subscribed(t, b, 0)
	return a, b
}

// TestRedisGuardRevokeFleet: two proxies' guards on one Redis, every
// policy: a revocation on A ends the token's sessions on B and on A (and
// not another token's), and the token is refused on both from then on.
func TestRedisGuardRevokeFleet(t *testing.T) {
	for _, p := range []reuse.Policy{reuse.Exclusive, reuse.SingleUse, reuse.Shared, reuse.Takeover} {
		t.Run(p.String(), func(t *testing.T) {
			srv, db := redisDB(t)
			log, logs := newLog()
			cfg := RedisGuardConfig{Policy: p, Logger: log}
			a, b := subscribedPair(t, srv.URL(db), cfg)
			var e endLog
			exp := time.Now().Add(time.Hour)
			relB, err := b.Acquire(keyOf("tok-rv-"+p.String()), exp, e.fn("b"))
			if err != nil {
				t.Fatal(err)
			}
			defer relB()
			relO, err := b.Acquire(keyOf("tok-other-"+p.String()), exp, e.fn("other"))
			if err != nil {
				t.Fatal(err)
			}
			defer relO()
			if err := a.Revoke(context.Background(), keyOf("tok-rv-"+p.String())); err != nil {
				t.Fatal(err)
			}
			e.endedWith(t, "b", reuse.Revoked)
			if got := e.of("other"); got != nil {
				t.Fatalf("another token's session ended: %v", got)
			}
			for _, g := range []*RedisGuard{a, b} {
				if _, err := g.Acquire(keyOf("tok-rv-"+p.String()), exp, nil); !errors.Is(err, reuse.ErrRevoked) {
					t.Fatalf("revoked token: %v, want ErrRevoked", err)
				}
			}
			noSecrets(t, logs.String(), "tok-rv-"+p.String())
		})
	}
}

// TestRedisGuardRevokeMissedWhileCut: B is cut from Redis (every byte
// held, then its connections dropped) while A revokes: B never gets the
// message, and still ends the session once it is back, by the check that
// follows its new subscription.
func TestRedisGuardRevokeMissedWhileCut(t *testing.T) {
	srv, db := redisDB(t)
	f := startForwarder(t, srv.Addr())
	cfg := RedisGuardConfig{Policy: reuse.Exclusive, Timeout: 500 * time.Millisecond}
	a := guardOn(t, srv.URL(db), cfg)
	b := guardOn(t, fmt.Sprintf("redis://%s/%d", f.addr(), db), cfg)
	subscribed(t, b, 0)
	var e endLog
	rel, err := b.Acquire(keyOf("tok-cut"), time.Now().Add(time.Hour), e.fn("b"))
	if err != nil {
		t.Fatal(err)
	}
	defer rel()
	checks := b.Checks()
	f.stall() // B hears nothing from now on
	if err := a.Revoke(context.Background(), keyOf("tok-cut")); err != nil {
		t.Fatal(err)
	}
	if got := e.of("b"); got != nil || b.Heard() != 0 {
		t.Fatalf("B heard the revocation through a stalled link: %v", got)
	}
	f.unstall() // the held bytes, the message among them, are dropped
	e.endedWith(t, "b", reuse.Revoked)
	if b.Heard() != 0 {
		t.Fatal("B heard the message: the test did not cut it off")
	}
	subscribed(t, b, checks)
}

// TestRedisGuardTakeoverFleet: takeover across two proxies: each new
// session, on either, ends the older one wherever it runs, never itself.
func TestRedisGuardTakeoverFleet(t *testing.T) {
	srv, db := redisDB(t)
	cfg := RedisGuardConfig{Policy: reuse.Takeover}
	a, b := subscribedPair(t, srv.URL(db), cfg)
	var e endLog
	exp := time.Now().Add(time.Hour)
	k := keyOf("tok-take")
	steps := []struct {
		name string
		g    *RedisGuard
	}{{"1a", a}, {"2b", b}, {"3a", a}, {"4a", a}}
	for i, s := range steps {
		rel, err := s.g.Acquire(k, exp, e.fn(s.name))
		if err != nil {
			t.Fatalf("%s: takeover refused: %v", s.name, err)
		}
		defer rel()
		if i > 0 {
			e.endedWith(t, steps[i-1].name, reuse.TakenOver)
		}
	}
	// The newest heard every message; it must still be live.
	testutil.CheckFor(t, "every takeover heard", func() error {
		if a.Heard()+b.Heard() < 6 { // 3 takeovers, each heard by both
			return fmt.Errorf("%d heard", a.Heard()+b.Heard())
		}
		return nil
	})
	if got := e.of("4a"); got != nil {
		t.Fatalf("the newest session was ended: %v", got)
	}
	// A proxy back from an outage ends its sessions that are no longer
	// the holder: B's session 5b, taken over by A while B was cut.
	f := startForwarder(t, srv.Addr())
	c := guardOn(t, fmt.Sprintf("redis://%s/%d", f.addr(), db), cfg)
	subscribed(t, c, 0)
	rel, err := c.Acquire(k, exp, e.fn("5c"))
	if err != nil {
		t.Fatal(err)
	}
	defer rel()
	e.endedWith(t, "4a", reuse.TakenOver)
	checks := c.Checks()
	f.stall()
	rel, err = a.Acquire(k, exp, e.fn("6a"))
	if err != nil {
		t.Fatal(err)
	}
	defer rel()
	f.unstall()
	e.endedWith(t, "5c", reuse.TakenOver)
	subscribed(t, c, checks)
	if got := e.of("6a"); got != nil {
		t.Fatalf("the newest session was ended: %v", got)
	}
}

// TestRedisGuardRevokeRetried: the revoking proxy A is cut from Redis:
// Revoke ends A's own session, answers ErrUnavailable and keeps the
// revocation; once A reaches Redis again it sends it, and B's session
// ends.
func TestRedisGuardRevokeRetried(t *testing.T) {
	srv, db := redisDB(t)
	f := startForwarder(t, srv.Addr())
	cfg := RedisGuardConfig{Policy: reuse.Shared, Timeout: 300 * time.Millisecond}
	a := guardOn(t, fmt.Sprintf("redis://%s/%d", f.addr(), db), cfg)
	b := guardOn(t, srv.URL(db), cfg)
	subscribed(t, a, 0)
	subscribed(t, b, 0)
	var e endLog
	exp := time.Now().Add(time.Hour)
	for name, g := range map[string]*RedisGuard{"a": a, "b": b} {
		rel, err := g.Acquire(keyOf("tok-retry"), exp, e.fn(name))
		if err != nil {
			t.Fatal(err)
		}
		defer rel()
	}
	f.stall()
	if err := a.Revoke(context.Background(), keyOf("tok-retry")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Redis cut: %v, want ErrUnavailable", err)
	}
	e.endedWith(t, "a", reuse.Revoked) // A's own, at once
	if got := e.of("b"); got != nil || a.PendingRevocations() != 1 {
		t.Fatalf("B ended %v with Redis cut; %d pending", got, a.PendingRevocations())
	}
	f.unstall()
	e.endedWith(t, "b", reuse.Revoked)
	testutil.CheckFor(t, "nothing pending", func() error {
		if n := a.PendingRevocations(); n != 0 {
			return fmt.Errorf("%d pending", n)
		}
		return nil
	})
	if _, err := b.Acquire(keyOf("tok-retry"), exp, nil); !errors.Is(err, reuse.ErrRevoked) {
		t.Fatalf("after the retry: %v, want ErrRevoked", err)
	}
}

// TestRedisGuardTakeoverInFlight: B's claim ran its script first
// (generation 2), but A's newer one (3) is heard before B's answer is
// processed: B's claim is refused (ErrTokenInUse), not left live beside
// A's; A's older session (1) ends.
func TestRedisGuardTakeoverInFlight(t *testing.T) {
	srv, db := redisDB(t)
	cfg := RedisGuardConfig{Policy: reuse.Takeover}
	a, b := subscribedPair(t, srv.URL(db), cfg)
	var e endLog
	k, exp := keyOf("tok-inflight"), time.Now().Add(time.Hour)
	if _, err := a.Acquire(k, exp, e.fn("a1")); err != nil { // generation 1
		t.Fatal(err)
	}
	heard := b.Heard()
	id := b.claims.Add(k, e.fn("b")) // B's Acquire, up to its script's answer
	gen, err := b.acquire(k, claim{key: b.claimKey(k), owner: b.owner(id)}, exp)
	if err != nil || gen != 2 {
		t.Fatalf("B's script: %d %v, want generation 2", gen, err)
	}
	if _, err := a.Acquire(k, exp, e.fn("a3")); err != nil { // generation 3
		t.Fatal(err)
	}
	testutil.CheckFor(t, "B hears generations 2 and 3", func() error {
		if b.Heard() < heard+2 {
			return errors.New("not yet")
		}
		return nil
	})
	if got := e.of("b"); got != nil {
		t.Fatalf("B's claim in flight was ended: %v (Acquire decides)", got)
	}
	if b.took(k, id, uint64(gen)) {
		t.Fatal("B's older claim was taken after a newer one was heard")
	}
	e.endedWith(t, "a1", reuse.TakenOver)
	if got := e.of("a3"); got != nil {
		t.Fatalf("the newest session was ended: %v", got)
	}
}

// TestRedisGuardTakeoverSimultaneous: one token opened at the same moment
// on two proxies, 20 times: each time exactly one session is left, the
// one Redis ordered last.
func TestRedisGuardTakeoverSimultaneous(t *testing.T) {
	srv, db := redisDB(t)
	rc := redisClient(t, srv, db)
	cfg := RedisGuardConfig{Policy: reuse.Takeover}
	guards := []*RedisGuard{guardOn(t, srv.URL(db), cfg), guardOn(t, srv.URL(db), cfg)}
	for _, g := range guards {
		subscribed(t, g, 0)
	}
	exp := time.Now().Add(time.Hour)
	for round := 0; round < 20; round++ {
		tok := fmt.Sprintf("tok-simul-%d", round)
		var e endLog
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, g := range guards {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if rel, err := g.Acquire(keyOf(tok), exp, e.fn(strconv.Itoa(i))); err == nil {
					t.Cleanup(rel)
				} else if !errors.Is(err, reuse.ErrTokenInUse) {
					t.Errorf("round %d: %v", round, err)
				} else {
					e.fn(strconv.Itoa(i))(reuse.TakenOver) // refused: no session
				}
			}()
		}
		close(start)
		wg.Wait()
		holder, _ := keyState(t, rc, liveKey(tok))
		_, owner, _ := strings.Cut(holder, " ")
		winner := 0
		if strings.HasPrefix(owner, guards[1].prefix) {
			winner = 1
		}
		e.endedWith(t, strconv.Itoa(1-winner), reuse.TakenOver)
		if got := e.of(strconv.Itoa(winner)); got != nil {
			t.Fatalf("round %d: the session Redis ordered last (%d) was ended: %v", round, winner, got)
		}
	}
}
