package bench

import (
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// The histogram's range, in microseconds: 1 µs to 60 s at three significant
// digits (a recorded value is within 0.1 % of the true one).
const (
	histLowestMicros  = 1
	histHighestMicros = 60_000_000
	histSigFigs       = 3
)

// Histogram records latencies (durations) for the report: an HdrHistogram in
// microseconds. Values below 1 µs count as 0 and values above 60 s as 60 s,
// so nothing is dropped.
//
// A Histogram is not safe for concurrent use: give each client loop its own
// and Merge them when the loops are done.
type Histogram struct {
	h *hdrhistogram.Histogram
}

// NewHistogram returns an empty histogram over 1 µs to 60 s.
func NewHistogram() *Histogram {
	return &Histogram{h: hdrhistogram.New(histLowestMicros, histHighestMicros, histSigFigs)}
}

// Record adds one duration. It does not allocate.
func (h *Histogram) Record(d time.Duration) {
	us := min(max(d.Microseconds(), 0), histHighestMicros)
	// In range by construction, so RecordValue cannot fail (and does not
	// build its error).
	_ = h.h.RecordValue(us)
}

// Merge adds every value recorded in o to h; o is unchanged.
func (h *Histogram) Merge(o *Histogram) {
	h.h.Merge(o.h)
}

// Count is the number of durations recorded.
func (h *Histogram) Count() int64 {
	return h.h.TotalCount()
}

// Percentiles summarises the distribution in milliseconds. An empty
// histogram gives all zeros.
func (h *Histogram) Percentiles() *Percentiles {
	return &Percentiles{
		Count: h.h.TotalCount(),
		P50:   h.quantileMs(50),
		P90:   h.quantileMs(90),
		P99:   h.quantileMs(99),
		P999:  h.quantileMs(99.9),
		Max:   microsToMs(h.maxMicros()),
	}
}

// quantileMs is the value at percentile q (0..100), in milliseconds.
func (h *Histogram) quantileMs(q float64) float64 {
	return microsToMs(h.h.ValueAtQuantile(q))
}

// maxMicros is the largest value recorded (0 when empty).
func (h *Histogram) maxMicros() int64 {
	if h.h.TotalCount() == 0 {
		return 0
	}
	return h.h.Max()
}

// CDF returns the cumulative distribution as (value_ms, fraction of values
// ≤ value_ms) pairs for plots: at most points pairs (points < 2 counts as 2),
// both coordinates non-decreasing, the last pair at fraction 1. An empty
// histogram gives nil. The returned slice is newly allocated.
func (h *Histogram) CDF(points int) [][2]float64 {
	total := h.h.TotalCount()
	if total == 0 {
		return nil
	}
	points = max(points, 2)
	out := make([][2]float64, 0, points)
	var seen int64
	next := 1 // the next step (of points) a kept pair must reach
	for _, bar := range h.h.Distribution() {
		if bar.Count == 0 {
			continue
		}
		seen += bar.Count
		// Keep a bar when its cumulative count crosses the next of points
		// evenly spaced fractions; the last bar always crosses the last.
		if seen*int64(points) < int64(next)*total {
			continue
		}
		out = append(out, [2]float64{microsToMs(bar.To), float64(seen) / float64(total)})
		next = int(seen*int64(points)/total) + 1
	}
	return out
}

// microsToMs converts microseconds to milliseconds.
func microsToMs(us int64) float64 {
	return float64(us) / 1e3
}
