//go:build linux

package loop

import (
	"testing"
	"time"
)

// The sweeper releases memory once per burst of at least releaseAfterOpens
// accepts, releaseQuiet after the last one; never while accepts go on,
// never for a trickle.
func TestMemReleaseDue(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	tick := sweepEvery
	var m memRelease
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * tick) }
	steps := []struct {
		accepted uint64
		want     bool
		why      string
	}{
		{0, false, "nothing accepted"},
		{400, false, "accepting"},
		{1200, false, "still accepting"},
		{1200, false, "quiet for one tick"},
		{1200, false, "quiet for two ticks"},
		{1200, false, "three"},
		{1200, false, "four"},
		{1200, true, "quiet for releaseQuiet after 1,200 accepts: release"},
		{1200, false, "released already"},
		{1300, false, "a trickle"},
		{1300, false, "quiet"},
		{1300, false, "quiet"},
		{1300, false, "quiet"},
		{1300, false, "quiet"},
		{1300, false, "quiet, but only 100 accepted since the release"},
		{2300, false, "a burst"},
		{2300, false, "quiet"},
		{2300, false, "quiet"},
		{2300, false, "quiet"},
		{2300, false, "quiet"},
		{2300, true, "quiet after 1,100 more: release"},
	}
	if releaseQuiet != 5*tick {
		t.Fatalf("the steps assume releaseQuiet = 5 sweeps, it is %v", releaseQuiet)
	}
	for i, s := range steps {
		if got := m.due(s.accepted, at(i)); got != s.want {
			t.Fatalf("step %d (%s): due %v, want %v", i, s.why, got, s.want)
		}
	}
}
