package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/consoleproxy/consoleproxy/bench"
)

// The TLS scenarios against consoleproxy and haproxy terminating TLS: every
// session opens over TLS and plain, the streams' bytes all arrive, the
// handshakes are full TLS 1.3 ones that each proved the session works, and
// BENCHMARKS.md gets a TLS section that a later run of load scenarios keeps.
// Speeds are not asserted.
func TestTLSScenarios(t *testing.T) {
	dir := t.TempDir()
	proxy := buildProxy(t, dir)
	const sessions, handshakes = 3, 40
	md := filepath.Join(dir, "BENCHMARKS.md")
	cfg := bench.Config{
		Targets: []string{"consoleproxy", "tcp-relay"}, Scenarios: bench.TLSScenarios(),
		Sessions: []int{sessions}, Rounds: 1, Duration: 300 * time.Millisecond,
		ResultsDir: filepath.Join(dir, "results"), BenchmarksMD: md, ConsoleproxyPath: proxy, HaproxyPath: haproxyPath(t),
		Command: "go test ./bench/e2e", Params: bench.Params{HandshakeCount: handshakes, HandshakeConcurrency: 4},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rs, err := bench.Run(ctx, cfg, testWriter{t})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if want := 2 * len(bench.TLSScenarios()); len(rs) != want {
		t.Fatalf("%d results, want %d", len(rs), want)
	}
	for _, r := range rs {
		checkTLSRun(t, &r, sessions, handshakes)
	}
	section := tlsSection(t, md)
	for _, want := range []string{"### Throughput: TLS next to plain", "### Full TLS handshakes",
		"| stream-up | 3 | consoleproxy |", "| rsa-2048 | 4 | tcp-relay |", "TLS_AES_128_GCM_SHA256, X25519"} {
		if !strings.Contains(section, want) {
			t.Errorf("TLS section lacks %q:\n%s", want, section)
		}
	}
	// A load run rewrites the page and keeps the TLS section.
	cfg.Scenarios, cfg.Targets, cfg.Sessions = []string{"hold"}, []string{"tcp-relay"}, []int{2}
	if _, err := bench.Run(ctx, cfg, testWriter{t}); err != nil {
		t.Fatalf("load run: %v", err)
	}
	if got := tlsSection(t, md); got != section {
		t.Errorf("the load run changed the TLS section:\n%s\nwas:\n%s", got, section)
	}
}

// checkTLSRun: nothing failed, opened = closed, what a scenario promises
// is there.
func checkTLSRun(t *testing.T, r *bench.Result, sessions, handshakes int) {
	t.Helper()
	name := r.Scenario + "/" + r.Target
	if len(r.Errors) > 0 || r.Failed != 0 || r.Opened != r.Closed {
		t.Errorf("%s: opened %d closed %d failed %d, errors %v", name, r.Opened, r.Closed, r.Failed, r.Errors)
	}
	overTLS := strings.HasPrefix(r.Scenario, "wss-") || strings.HasPrefix(r.Scenario, "tls-")
	if v := r.Params["tls_version"]; overTLS != (v != "") || (overTLS && (v != "TLS 1.3" || r.Params["group"] != "X25519")) {
		t.Errorf("%s: negotiated %q %q", name, v, r.Params["group"])
	}
	if strings.HasPrefix(r.Scenario, "tls-handshakes") {
		if r.Opened < 1 || r.Opened > handshakes || r.Messages != int64(r.Opened) || r.SessionsPerSecond <= 0 || r.Latency == nil {
			t.Errorf("%s: %d handshakes (at most %d), %d proved, %.0f/s, latency %v", name, r.Opened, handshakes, r.Messages, r.SessionsPerSecond, r.Latency)
		}
		return
	}
	if r.Opened != sessions || r.MBps <= 0 || r.ProxyCPUSecPerGB <= 0 || r.BytesSent == 0 || r.BytesSent != r.BytesReceived {
		t.Errorf("%s: opened %d, %.1f MB/s, %.2f CPU-s/GB, bytes sent %d received %d", name, r.Opened, r.MBps, r.ProxyCPUSecPerGB, r.BytesSent, r.BytesReceived)
	}
}

// tlsSection is the "## TLS" section of the Markdown file at path.
func tlsSection(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, "\n## TLS\n")
	if start < 0 {
		t.Fatalf("no TLS section in %s:\n%s", path, doc)
	}
	rest := doc[start+1:]
	if end := strings.Index(rest[1:], "\n## "); end >= 0 {
		rest = rest[:end+2]
	}
	return rest
}
