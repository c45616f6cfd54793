package loop

import (
	"fmt"
	"io"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
)

// serverMetrics are the contract's metric names, in a Set of the server's
// own (so tests can run several servers in one process).
type serverMetrics struct {
	set      *metrics.Set
	active   atomic.Int64
	results  map[Result]*metrics.Counter
	ends     map[End]*metrics.Counter
	up, down *metrics.Counter
	// acceptErrors counts accept(2) failures for lack of descriptors or
	// memory; shed counts the waiting connections closed because of them.
	acceptErrors, shed *metrics.Counter
	handshake          *metrics.PrometheusHistogram
	duration           *metrics.PrometheusHistogram
}

func newServerMetrics() *serverMetrics {
	m := &serverMetrics{set: metrics.NewSet(), results: map[Result]*metrics.Counter{}, ends: map[End]*metrics.Counter{}}
	m.set.NewGauge("consoleproxy_sessions_active", func() float64 { return float64(m.active.Load()) })
	for _, r := range allResults {
		m.results[r] = m.set.NewCounter(fmt.Sprintf(`consoleproxy_sessions_total{result=%q}`, r))
	}
	for _, e := range allEnds {
		m.ends[e] = m.set.NewCounter(fmt.Sprintf(`consoleproxy_session_ends_total{reason=%q}`, e))
	}
	m.acceptErrors = m.set.NewCounter("consoleproxy_accept_errors_total")
	m.shed = m.set.NewCounter("consoleproxy_connections_shed_total")
	m.up = m.set.NewCounter(`consoleproxy_bytes_total{direction="client_to_host"}`)
	m.down = m.set.NewCounter(`consoleproxy_bytes_total{direction="host_to_client"}`)
	m.handshake = m.set.NewPrometheusHistogram("consoleproxy_handshake_duration_seconds")
	m.duration = m.set.NewPrometheusHistogramExt("consoleproxy_session_duration_seconds",
		[]float64{1, 10, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600})
	return m
}

// WritePrometheus writes the server's metrics and the Go runtime and process
// metrics in Prometheus text format.
func (m *serverMetrics) WritePrometheus(w io.Writer) {
	m.set.WritePrometheus(w)
	metrics.WriteProcessMetrics(w)
}
