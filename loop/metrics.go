//go:build linux

package loop

import (
	"bufio"
	"bytes"
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
	static             map[int]*metrics.Counter // page loads from --web, by status (static.go)
	handshake          *metrics.PrometheusHistogram
	duration           *metrics.PrometheusHistogram
}

func newServerMetrics() *serverMetrics {
	// # HELP and # TYPE lines: the library's switch is process-wide (and
	// safe to set again); every Set in this binary is ours.
	metrics.ExposeMetadata(true)
	m := &serverMetrics{set: metrics.NewSet(), results: map[Result]*metrics.Counter{}, ends: map[End]*metrics.Counter{}}
	m.set.NewGauge("consoleproxy_sessions_active", func() float64 { return float64(m.active.Load()) })
	for _, r := range allResults {
		m.results[r] = m.set.NewCounter(fmt.Sprintf(`consoleproxy_sessions_total{result=%q}`, r))
	}
	for _, e := range allEnds {
		m.ends[e] = m.set.NewCounter(fmt.Sprintf(`consoleproxy_session_ends_total{reason=%q}`, e))
	}
	m.static = newStaticCounters(m.set)
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
// metrics in Prometheus text format, with # HELP and # TYPE lines.
func (m *serverMetrics) WritePrometheus(w io.Writer) {
	var b bytes.Buffer
	m.set.WritePrometheus(&b)
	metrics.WriteProcessMetrics(&b)
	_ = writeWithHelp(w, b.Bytes()) // a scrape's write error is the scraper's to see
}

// writeWithHelp copies the exposition text to w, filling in the text of
// each bare "# HELP name" line the library writes from metricHelp.
func writeWithHelp(w io.Writer, text []byte) error {
	bw := bufio.NewWriter(w)
	for len(text) > 0 {
		line, rest, _ := bytes.Cut(text, []byte("\n"))
		text = rest
		if _, err := bw.Write(line); err != nil {
			return err
		}
		if name, ok := bytes.CutPrefix(line, []byte("# HELP ")); ok && bytes.IndexByte(name, ' ') < 0 {
			if h := metricHelp[string(name)]; h != "" {
				if _, err := bw.WriteString(" " + h); err != nil {
					return err
				}
			}
		}
		if err := bw.WriteByte('\n'); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// metricHelp is the # HELP text of each series family the proxy writes
// (docs/contract.md "Metrics"; the result and reason labels are in results.go).
// The Go runtime and process families keep the library's bare HELP line.
var metricHelp = map[string]string{
	"consoleproxy_sessions_active":               "WebSocket sessions relaying now.",
	"consoleproxy_ready":                         "1 while the proxy takes new sessions, 0 while it drains (as /readyz).",
	"consoleproxy_sessions_max":                  "The --max-sessions cap (0: none); by default what the open-file limit allows, so sessions_active over it is the descriptor headroom.",
	"consoleproxy_sessions_total":                "Connections by how their handshake ended: result ok got 101, every other result is a refusal or a client that left.",
	"consoleproxy_session_ends_total":            "Relaying sessions ended, by reason.",
	"consoleproxy_static_requests_total":         "Requests for --web files (noVNC's pages), by HTTP status; not sessions, so not in consoleproxy_sessions_total.",
	"consoleproxy_bytes_total":                   "Console bytes relayed, by direction (client_to_host, host_to_client).",
	"consoleproxy_handshake_duration_seconds":    "From accept to 101 Switching Protocols, for the connections that got it.",
	"consoleproxy_session_duration_seconds":      "From 101 to the session's end.",
	"consoleproxy_accept_errors_total":           "accept(2) failures for lack of descriptors or memory.",
	"consoleproxy_connections_shed_total":        "Waiting connections closed because accept(2) ran out of descriptors or memory.",
	"consoleproxy_connections_pending":           "Connections in the HTTP upgrade or the TLS handshake (bounded by --max-pending).",
	"consoleproxy_worker_queue_length":           "Handshakes waiting for a worker (bounded by --worker-queue; past it 503 overloaded).",
	"consoleproxy_host_handshakes_pending":       "Compute-host connects and their CONNECT or RFB handshakes in progress on the relay pollers.",
	"consoleproxy_per_ip_addresses":              "Client addresses with live sessions tracked for --max-sessions-per-ip.",
	"consoleproxy_auth_failure_addresses":        "Client addresses with refused tokens tracked this minute for --auth-failures-per-ip.",
	"consoleproxy_auth_attempts_untracked_total": "Token lookups from addresses --auth-failures-per-ip could not track (its address table was full).",
	"consoleproxy_reuse_releases_dropped_total":  "Fleet reuse-store releases dropped with the queue full (their claims lapse with the lease).",
	"consoleproxy_reuse_leases_lost_total":       "Fleet reuse-store claims found taken by another session at renewal (a lease lapsed while Redis was away).",
}

// b2f is 1 for true, 0 for false: a boolean as a gauge's value.
func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
