package bench

// Metric is one measured column of the report's table: a figure a Result
// may carry, in the unit the table shows.
type Metric int

// The table's metric columns, in the order they appear.
const (
	MetricMBps           Metric = iota // MB/s (10^6 bytes) in total
	MetricMBpsPerSession               // MB/s per session
	MetricCPUPerGB                     // proxy CPU seconds per GB moved
	MetricP50                          // latency median, ms
	MetricP90                          // latency p90, ms
	MetricP99                          // latency p99, ms
	MetricP999                         // latency p99.9, ms
	MetricMax                          // latency maximum, ms
	MetricSessionsPerSec               // churn rate: sessions opened, used and closed per second
	MetricRSSPerSession                // proxy RSS per held session, KiB
	MetricPSSPerSession                // proxy PSS per held session, KiB
	MetricFDs                          // the proxy's open file descriptors
	MetricProxyCPU                     // proxy CPU seconds over the measured phase
	MetricClientCPU                    // harness CPU seconds over the measured phase
	numMetrics
)

// Better says which direction of a metric is an improvement.
type Better int

// Directions of improvement.
const (
	Neither Better = iota // informative only (fds, the harness's own CPU)
	Higher
	Lower
)

// metricSpec describes one metric: its column header and how to read it
// from a Result.
type metricSpec struct {
	name   string // short name, used for ratio columns: "p99"
	unit   string // "ms", "KiB", …; empty when the name says it
	better Better
	always bool // shown even when zero in every round (CPU time)
	value  func(r *Result) float64
}

// Header is the metric's column header, unit included.
func (m Metric) Header() string {
	s := m.spec()
	if s.unit == "" {
		return s.name
	}
	return s.name + " " + s.unit
}

// Better is the direction in which the metric improves.
func (m Metric) Better() Better { return m.spec().better }

// valueOf reads the metric from one run, in the table's unit.
func (m Metric) valueOf(r *Result) float64 { return m.spec().value(r) }

// spec is the description of m; the zero spec for an unknown Metric.
func (m Metric) spec() metricSpec {
	switch m {
	case MetricMBps:
		return metricSpec{"MB/s", "", Higher, false, func(r *Result) float64 { return r.MBps }}
	case MetricMBpsPerSession:
		return metricSpec{"MB/s/session", "", Higher, false, func(r *Result) float64 { return r.MBpsPerSession }}
	case MetricCPUPerGB:
		return metricSpec{"proxy CPU-s/GB", "", Lower, false, func(r *Result) float64 { return r.ProxyCPUSecPerGB }}
	case MetricP50:
		return latencySpec("p50", func(p *Percentiles) float64 { return p.P50 })
	case MetricP90:
		return latencySpec("p90", func(p *Percentiles) float64 { return p.P90 })
	case MetricP99:
		return latencySpec("p99", func(p *Percentiles) float64 { return p.P99 })
	case MetricP999:
		return latencySpec("p99.9", func(p *Percentiles) float64 { return p.P999 })
	case MetricMax:
		return latencySpec("max", func(p *Percentiles) float64 { return p.Max })
	case MetricSessionsPerSec:
		return metricSpec{"sessions/s", "", Higher, false, func(r *Result) float64 { return r.SessionsPerSecond }}
	case MetricRSSPerSession:
		return metricSpec{"RSS/session", "KiB", Lower, false, func(r *Result) float64 { return r.RSSPerSession / 1024 }}
	case MetricPSSPerSession:
		return metricSpec{"PSS/session", "KiB", Lower, false, func(r *Result) float64 { return r.PSSPerSession / 1024 }}
	case MetricFDs:
		return metricSpec{"open fds", "", Neither, false, func(r *Result) float64 { return float64(r.ProxyFDs) }}
	case MetricProxyCPU:
		return metricSpec{"proxy CPU", "s", Lower, true, func(r *Result) float64 { return r.ProxyCPUSeconds }}
	case MetricClientCPU:
		return metricSpec{"client CPU", "s", Neither, true, func(r *Result) float64 { return r.ClientCPUSeconds }}
	}
	return metricSpec{value: func(*Result) float64 { return 0 }}
}

// latencySpec is the spec of one latency percentile (lower is better, ms);
// a run without latency reads as 0.
func latencySpec(name string, pick func(p *Percentiles) float64) metricSpec {
	return metricSpec{name, "ms", Lower, false, func(r *Result) float64 {
		if r.Latency == nil {
			return 0
		}
		return pick(r.Latency)
	}}
}

// ratioMetrics are the metrics a scenario compares against the reference:
// its headline figures.
func ratioMetrics(scenario string) []Metric {
	switch scenario {
	case "hold":
		return []Metric{MetricRSSPerSession, MetricPSSPerSession}
	case "echo":
		return []Metric{MetricP50, MetricP99}
	case "stream-down", "stream-up":
		return []Metric{MetricMBps, MetricCPUPerGB}
	case "churn":
		return []Metric{MetricSessionsPerSec, MetricP99}
	}
	return []Metric{MetricMBps, MetricP99} // mixed, and scenarios added later
}

// scenarioRank orders scenarios in the table: the fixed order below, then
// any other scenario (alphabetically, by the caller's tie-break).
func scenarioRank(scenario string) int {
	for i, s := range [...]string{"hold", "echo", "stream-down", "stream-up", "churn", "mixed"} {
		if s == scenario {
			return i
		}
	}
	return 6
}
