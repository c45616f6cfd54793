package reuse

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestReusePolicies(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	k := Key{1}
	exp := now.Add(time.Minute)

	g := NewLocalGuard(Exclusive, clock)
	rel, err := g.Acquire(k, exp, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Acquire(k, exp, nil); !errors.Is(err, ErrTokenInUse) {
		t.Fatalf("exclusive: second live session: %v", err)
	}
	if _, err := g.Acquire(Key{2}, exp, nil); err != nil {
		t.Fatalf("exclusive: another token: %v", err)
	}
	rel()
	rel() // idempotent
	if _, err := g.Acquire(k, exp, nil); err != nil {
		t.Fatalf("exclusive: after release: %v", err)
	}

	g = NewLocalGuard(SingleUse, clock)
	rel, err = g.Acquire(k, exp, nil)
	if err != nil {
		t.Fatal(err)
	}
	rel()
	if _, err := g.Acquire(k, exp, nil); !errors.Is(err, ErrTokenInUse) {
		t.Fatalf("single-use: second session ever: %v", err)
	}

	g = NewLocalGuard(Shared, clock)
	for i := 0; i < 3; i++ {
		if _, err := g.Acquire(k, exp, nil); err != nil {
			t.Fatalf("shared: %v", err)
		}
	}
}

// Single-use memory is pruned once tokens expire: it cannot grow for weeks.
func TestSingleUsePruned(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	g := NewLocalGuard(SingleUse, func() time.Time { return now })
	for i := 0; i < 5000; i++ {
		_, _ = g.Acquire(Key{byte(i), byte(i >> 8)}, now.Add(time.Minute), nil)
	}
	now = now.Add(2 * time.Minute)
	for i := 0; i < 5000; i++ {
		_, _ = g.Acquire(Key{byte(i), byte(i >> 8), 1}, now.Add(time.Minute), nil)
	}
	if n := g.Len(); n > 6000 { // 10,000 without pruning
		t.Fatalf("%d entries kept; expired ones were not pruned", n)
	}
}

func TestParseReusePolicy(t *testing.T) {
	for _, s := range []string{"exclusive", "single-use", "shared", "takeover"} {
		p, err := ParsePolicy(s)
		if err != nil || p.String() != s {
			t.Errorf("%s: %v %v", s, p, err)
		}
	}
	if _, err := ParsePolicy("many"); err == nil {
		t.Error("bogus policy accepted")
	}
}

// ends records the reasons a guard ended each session.
type ends struct {
	mu  sync.Mutex
	got map[int][]Reason
}

func (e *ends) fn(i int) func(Reason) {
	return func(r Reason) {
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.got == nil {
			e.got = map[int][]Reason{}
		}
		e.got[i] = append(e.got[i], r)
	}
}

func (e *ends) of(i int) []Reason {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.got[i]
}

// takeover: each new session ends the older ones of its token, never
// itself or another token's.
func TestTakeoverEndsOlder(t *testing.T) {
	g := NewLocalGuard(Takeover, nil)
	var e ends
	exp := time.Now().Add(time.Minute)
	rel1, err := g.Acquire(Key{1}, exp, e.fn(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Acquire(Key{2}, exp, e.fn(9)); err != nil {
		t.Fatal(err)
	}
	rel2, err := g.Acquire(Key{1}, exp, e.fn(2))
	if err != nil {
		t.Fatalf("takeover refused a new session: %v", err)
	}
	if got := e.of(1); len(got) != 1 || got[0] != TakenOver {
		t.Fatalf("older session: ended %v, want [TakenOver]", got)
	}
	if e.of(2) != nil || e.of(9) != nil {
		t.Fatalf("the new session or another token's was ended: %v %v", e.of(2), e.of(9))
	}
	rel1() // the older one goes: the newer is still the holder
	if _, err := g.Acquire(Key{1}, exp, e.fn(3)); err != nil {
		t.Fatal(err)
	}
	if got := e.of(2); len(got) != 1 || got[0] != TakenOver {
		t.Fatalf("second session: ended %v, want [TakenOver]", got)
	}
	rel2()
}

// Revoke ends the token's live sessions under every policy and refuses it
// from then on; other tokens go on.
func TestRevokeLocal(t *testing.T) {
	for _, p := range []Policy{Exclusive, SingleUse, Shared, Takeover} {
		t.Run(p.String(), func(t *testing.T) {
			g := NewLocalGuard(p, nil)
			var e ends
			exp := time.Now().Add(time.Minute)
			if _, err := g.Acquire(Key{1}, exp, e.fn(1)); err != nil {
				t.Fatal(err)
			}
			rel, err := g.Acquire(Key{2}, exp, e.fn(2))
			if err != nil {
				t.Fatal(err)
			}
			if err := g.Revoke(context.Background(), Key{1}); err != nil {
				t.Fatal(err)
			}
			if got := e.of(1); len(got) != 1 || got[0] != Revoked {
				t.Fatalf("revoked session: ended %v, want [Revoked]", got)
			}
			if e.of(2) != nil {
				t.Fatal("another token's session was ended")
			}
			if _, err := g.Acquire(Key{1}, exp, nil); !errors.Is(err, ErrRevoked) {
				t.Fatalf("revoked token: %v, want ErrRevoked", err)
			}
			rel()
			if _, err := g.Acquire(Key{2}, exp, nil); err != nil && p != SingleUse {
				t.Fatalf("another token after release: %v", err)
			}
		})
	}
}

// A claim's id is gone with its release: Claims holds only live sessions.
func TestClaimsBounded(t *testing.T) {
	g := NewLocalGuard(Shared, nil)
	exp := time.Now().Add(time.Minute)
	for i := 0; i < 1000; i++ {
		rel, err := g.Acquire(Key{byte(i)}, exp, func(Reason) {})
		if err != nil {
			t.Fatal(err)
		}
		rel()
		rel()
	}
	if n := g.Live(); n != 0 {
		t.Fatalf("%d claims kept after release", n)
	}
}
