//go:build linux

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"
)

// /metrics carries # HELP and # TYPE lines (Prometheus text format 0.0.4),
// so Prometheus, Grafana and promtool know each family's type; every
// consoleproxy_ family the binary writes has a HELP text; the --max-sessions
// cap is a series (the alert rules' headroom).
func TestMetricsHelpAndType(t *testing.T) {
	p := startBinary(t, nil, "--max-sessions", "77", "--max-sessions-per-ip", "10", "--auth-failures-per-ip", "10")
	code, body := httpGet(t, "http://"+p.metrics+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		"# TYPE consoleproxy_sessions_active gauge",
		"# TYPE consoleproxy_sessions_max gauge", "consoleproxy_sessions_max 77",
		"# TYPE consoleproxy_ready gauge", "consoleproxy_ready 1",
		"# TYPE consoleproxy_sessions_total counter",
		"# TYPE consoleproxy_session_ends_total counter",
		"# TYPE consoleproxy_bytes_total counter",
		"# TYPE consoleproxy_handshake_duration_seconds histogram",
		"# TYPE consoleproxy_session_duration_seconds histogram",
		"# TYPE consoleproxy_accept_errors_total counter",
		"# TYPE consoleproxy_connections_shed_total counter",
		"# TYPE consoleproxy_connections_pending gauge",
		"# TYPE consoleproxy_worker_queue_length gauge",
		"# TYPE consoleproxy_host_handshakes_pending gauge",
		"# TYPE process_resident_memory_bytes gauge",
		"# TYPE go_goroutines gauge",
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	families := map[string]bool{} // family → has a HELP text
	types := map[string]int{}
	for _, l := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(l, "# HELP "); ok {
			name, text, _ := strings.Cut(rest, " ")
			families[name] = strings.TrimSpace(text) != ""
		}
		if rest, ok := strings.CutPrefix(l, "# TYPE "); ok {
			name, _, _ := strings.Cut(rest, " ")
			types[name]++
		}
	}
	for name, n := range types {
		if n != 1 {
			t.Errorf("%s has %d TYPE lines, want 1", name, n)
		}
	}
	for name, hasText := range families {
		if strings.HasPrefix(name, "consoleproxy_") && !hasText {
			t.Errorf("%s has no HELP text (add it to loop/metrics.go metricHelp)", name)
		}
	}
	untyped := map[string]bool{}
	for _, l := range strings.Split(body, "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		name, _, _ := strings.Cut(l, " ")
		name, _, _ = strings.Cut(name, "{")
		if types[name] == 0 && types[histogramFamily(name)] == 0 && !untyped[name] {
			untyped[name] = true
			t.Errorf("series %s has no TYPE line", name)
		}
	}
}

// histogramFamily is the family of a histogram series name.
func histogramFamily(name string) string {
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		if f, ok := strings.CutSuffix(name, s); ok {
			return f
		}
	}
	return name
}

// consoleproxy_ready is 1 while the proxy takes sessions and 0 once it
// drains, as /readyz (the alert rules' "not ready").
func TestReadyGauge(t *testing.T) {
	p := startProxy(t, nil)
	wantMetric(t, p, "consoleproxy_ready 1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	wantMetric(t, p, "consoleproxy_ready 0")
}
