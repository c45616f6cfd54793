package reuse

import (
	"errors"
	"testing"
	"time"
)

func TestReusePolicies(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	k := Key{1}
	exp := now.Add(time.Minute)

	g := NewLocalGuard(Exclusive, clock)
	rel, err := g.Acquire(k, exp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Acquire(k, exp); !errors.Is(err, ErrTokenInUse) {
		t.Fatalf("exclusive: second live session: %v", err)
	}
	if _, err := g.Acquire(Key{2}, exp); err != nil {
		t.Fatalf("exclusive: another token: %v", err)
	}
	rel()
	rel() // idempotent
	if _, err := g.Acquire(k, exp); err != nil {
		t.Fatalf("exclusive: after release: %v", err)
	}

	g = NewLocalGuard(SingleUse, clock)
	rel, err = g.Acquire(k, exp)
	if err != nil {
		t.Fatal(err)
	}
	rel()
	if _, err := g.Acquire(k, exp); !errors.Is(err, ErrTokenInUse) {
		t.Fatalf("single-use: second session ever: %v", err)
	}

	g = NewLocalGuard(Shared, clock)
	for i := 0; i < 3; i++ {
		if _, err := g.Acquire(k, exp); err != nil {
			t.Fatalf("shared: %v", err)
		}
	}
}

// Single-use memory is pruned once tokens expire: it cannot grow for weeks.
func TestSingleUsePruned(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	g := NewLocalGuard(SingleUse, func() time.Time { return now })
	for i := 0; i < 5000; i++ {
		_, _ = g.Acquire(Key{byte(i), byte(i >> 8)}, now.Add(time.Minute))
	}
	now = now.Add(2 * time.Minute)
	for i := 0; i < 5000; i++ {
		_, _ = g.Acquire(Key{byte(i), byte(i >> 8), 1}, now.Add(time.Minute))
	}
	if n := g.Len(); n > 6000 { // 10,000 without pruning
		t.Fatalf("%d entries kept; expired ones were not pruned", n)
	}
}

func TestParseReusePolicy(t *testing.T) {
	for _, s := range []string{"exclusive", "single-use", "shared"} {
		p, err := ParsePolicy(s)
		if err != nil || p.String() != s {
			t.Errorf("%s: %v %v", s, p, err)
		}
	}
	if _, err := ParsePolicy("many"); err == nil {
		t.Error("bogus policy accepted")
	}
}
