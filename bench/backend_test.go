package bench

import (
	"testing"
	"time"
)

// TestBurstClockSeeded: two backends of one seed give their k-th rfb
// connections the same gaps (a round's targets see the same bursts), and
// other connections and seeds other ones; every gap lies in [0.5, 1.5) of
// the mean.
func TestBurstClockSeeded(t *testing.T) {
	const mean = time.Second
	gaps := func(seed uint64, conns int) [][]time.Duration {
		b := &Backend{cfg: BackendConfig{BurstInterval: mean, BurstSeed: seed}}
		out := make([][]time.Duration, conns)
		for i := range out {
			bc := b.newBurstClock(time.Time{})
			for range 8 {
				g := bc.gap()
				if g < mean/2 || g >= mean*3/2 {
					t.Fatalf("gap %v outside [0.5, 1.5) × %v", g, mean)
				}
				out[i] = append(out[i], g)
			}
		}
		return out
	}
	a, b, c := gaps(3, 2), gaps(3, 2), gaps(4, 2)
	for i := range a {
		for j := range a[i] {
			if a[i][j] != b[i][j] {
				t.Fatalf("connection %d gap %d: %v and %v under one seed", i, j, a[i][j], b[i][j])
			}
		}
	}
	if a[0][0] == a[1][0] && a[0][1] == a[1][1] {
		t.Errorf("two connections of one backend drew the same gaps %v", a[0][:2])
	}
	if a[0][0] == c[0][0] && a[0][1] == c[0][1] {
		t.Errorf("seeds 3 and 4 drew the same gaps %v", a[0][:2])
	}
}

// TestBurstClockStart: a connection that waited for StartSending counts
// its schedule from it; one that began later, from when it began.
func TestBurstClockStart(t *testing.T) {
	sent := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	b := &Backend{sentAt: sent}
	if bc := b.newBurstClock(sent.Add(-time.Second)); !bc.next.Equal(sent) {
		t.Errorf("waiting connection starts at %v, want StartSending's %v", bc.next, sent)
	}
	later := sent.Add(time.Minute)
	if bc := b.newBurstClock(later); !bc.next.Equal(later) {
		t.Errorf("later connection starts at %v, want its own %v", bc.next, later)
	}
}
