package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

// histPrecision is the relative error HdrHistogram allows at three
// significant digits (2048 sub-buckets: under 1/1024).
const histPrecision = 1e-3

// histSamples are test distributions, in whole microseconds so the naive
// reference sees exactly what the histogram records.
func histSamples(t *testing.T) map[string][]int64 {
	t.Helper()
	rng := rand.New(rand.NewPCG(6, 1))
	gen := func(n int, f func() float64) []int64 {
		vs := make([]int64, n)
		for i := range vs {
			vs[i] = int64(f())
		}
		return vs
	}
	return map[string][]int64{
		"one":         {1234},
		"seven":       gen(7, func() float64 { return rng.Float64() * 5e4 }),
		"uniform":     gen(20_000, func() float64 { return 1 + rng.Float64()*1e4 }),
		"exponential": gen(50_000, func() float64 { return rng.ExpFloat64() * 300 }),
		"lognormal":   gen(50_000, func() float64 { return math.Exp(6 + 2*rng.NormFloat64()) }),
		"constant":    gen(1000, func() float64 { return 777 }),
		"up to 60s":   gen(5000, func() float64 { return rng.Float64() * 6e7 }),
	}
}

func recordMicros(h *Histogram, us []int64) {
	for _, v := range us {
		h.Record(time.Duration(v) * time.Microsecond)
	}
}

// naiveRange is the range of values the histogram may report for
// percentile q of sorted, in ms: the nearest-rank sample, widened by one
// rank either way (rank conventions differ by one) and by the histogram's
// precision.
func naiveRange(sorted []int64, q float64) (lo, hi float64) {
	n := len(sorted)
	r := max(int(math.Ceil(q/100*float64(n))), 1) // 1-based nearest rank
	lo = float64(sorted[max(r-2, 0)]) / 1e3
	hi = float64(sorted[min(r, n-1)])/1e3*(1+histPrecision) + 0.001
	return lo, hi
}

func TestHistogramPercentilesMatchNaive(t *testing.T) {
	for name, us := range histSamples(t) {
		t.Run(name, func(t *testing.T) {
			h := NewHistogram()
			recordMicros(h, us)
			sorted := slices.Sorted(slices.Values(us))
			p := h.Percentiles()
			if p.Count != int64(len(us)) {
				t.Fatalf("count %d, want %d", p.Count, len(us))
			}
			for _, c := range []struct {
				q   float64
				got float64
			}{{50, p.P50}, {90, p.P90}, {99, p.P99}, {99.9, p.P999}, {100, p.Max}} {
				lo, hi := naiveRange(sorted, c.q)
				if c.got < lo || c.got > hi {
					t.Errorf("p%v = %v ms, want within [%v, %v]", c.q, c.got, lo, hi)
				}
			}
		})
	}
}

func TestHistogramEmptyAndClamped(t *testing.T) {
	h := NewHistogram()
	if p := *h.Percentiles(); p != (Percentiles{}) {
		t.Errorf("empty percentiles %+v, want zeros", p)
	}
	if cdf := h.CDF(10); cdf != nil {
		t.Errorf("empty CDF %v, want nil", cdf)
	}
	h.Record(-time.Second)
	h.Record(500 * time.Nanosecond)
	h.Record(2 * time.Minute)
	p := h.Percentiles()
	if p.Count != 3 || p.P50 != 0 {
		t.Errorf("count %d p50 %v, want 3 and 0 (sub-µs and negative as 0)", p.Count, p.P50)
	}
	if p.Max < 60_000 || p.Max > 60_000*(1+histPrecision) {
		t.Errorf("max %v ms, want 60 s (clamped)", p.Max)
	}
}

func TestHistogramMerge(t *testing.T) {
	us := histSamples(t)["lognormal"]
	whole, a, b := NewHistogram(), NewHistogram(), NewHistogram()
	recordMicros(whole, us)
	recordMicros(a, us[:len(us)/3])
	recordMicros(b, us[len(us)/3:])
	a.Merge(b)
	if got, want := *a.Percentiles(), *whole.Percentiles(); got != want {
		t.Errorf("merged %+v, want %+v", got, want)
	}
	if b.Count() != int64(len(us)-len(us)/3) {
		t.Errorf("merge changed its source: count %d", b.Count())
	}
	if !slices.Equal(a.CDF(50), whole.CDF(50)) {
		t.Error("merged CDF differs from the CDF of all values")
	}
}

func TestHistogramCDF(t *testing.T) {
	for name, us := range histSamples(t) {
		sorted := slices.Sorted(slices.Values(us))
		for _, points := range []int{1, 2, 10, 200, 100_000} {
			h := NewHistogram()
			recordMicros(h, us)
			cdf := h.CDF(points)
			checkCDF(t, name, points, cdf, sorted)
		}
	}
}

// checkCDF asserts the CDF's shape and that each fraction is exactly the
// share of samples at or below its value.
func checkCDF(t *testing.T, name string, points int, cdf [][2]float64, sorted []int64) {
	t.Helper()
	if len(cdf) == 0 || len(cdf) > max(points, 2) {
		t.Fatalf("%s/%d: %d points, want 1..%d", name, points, len(cdf), max(points, 2))
	}
	if last := cdf[len(cdf)-1][1]; last != 1 {
		t.Errorf("%s/%d: last fraction %v, want 1", name, points, last)
	}
	for i, c := range cdf {
		if i > 0 && (c[0] < cdf[i-1][0] || c[1] < cdf[i-1][1]) {
			t.Errorf("%s/%d: not monotone at %d: %v after %v", name, points, i, c, cdf[i-1])
		}
		atOrBelow := countAtOrBelow(sorted, int64(math.Round(c[0]*1e3)))
		if want := float64(atOrBelow) / float64(len(sorted)); math.Abs(c[1]-want) > 1e-12 {
			t.Errorf("%s/%d: fraction %v at %v ms, want %v", name, points, c[1], c[0], want)
		}
	}
}

func countAtOrBelow(sorted []int64, us int64) int {
	n, _ := slices.BinarySearch(sorted, us+1)
	return n
}

func TestHistogramRecordAllocs(t *testing.T) {
	if testutil.Race {
		t.Skip("the race detector allocates")
	}
	h := NewHistogram()
	d := 1500 * time.Microsecond
	if n := testing.AllocsPerRun(1000, func() { h.Record(d); d += 37 * time.Microsecond }); n != 0 {
		t.Errorf("Record allocates %v times per call, want 0", n)
	}
}
