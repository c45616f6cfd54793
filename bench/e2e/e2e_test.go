// Package e2e runs consolebench's engine end to end: every scenario, for a
// second, against consoleproxy (built here) and the TCP relay (haproxy), and
// checks that the results are well formed and that the counts add up. It
// never asserts a speed or a duration.
package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/consoleproxy/consoleproxy/bench"
)

// buildProxy builds bin/consoleproxy into dir and returns its path. The
// product is its own module at the repository root (bench is a separate
// module), so it is built there.
func buildProxy(t *testing.T, dir string) string {
	t.Helper()
	proxy := filepath.Join(dir, "consoleproxy")
	build := exec.Command("go", "build", "-o", proxy, "./cmd/consoleproxy")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building consoleproxy: %v\n%s", err, out)
	}
	return proxy
}

func TestEveryScenario(t *testing.T) {
	haproxy := haproxyPath(t)
	dir := t.TempDir()
	proxy := buildProxy(t, dir)
	const sessions = 20
	cfg := bench.Config{
		Targets: []string{"consoleproxy", "tcp-relay"}, Scenarios: bench.AllScenarios(),
		Sessions: []int{sessions}, Rounds: 1, Duration: time.Second,
		ResultsDir: filepath.Join(dir, "results"), ConsoleproxyPath: proxy, HaproxyPath: haproxy,
		// Flat-out uploads outrun the sink now and then; consoleproxy's 1 MiB
		// client backlog would end such a session, which is its policy, not the
		// harness's concern here.
		ConsoleproxyArgs: []string{"--max-client-backlog", "268435456"},
		Command:          "cd bench && go test ./e2e",
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rs, err := bench.Run(ctx, cfg, testWriter{t})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if want := 2 * len(bench.AllScenarios()); len(rs) != want {
		t.Fatalf("%d results, want %d", len(rs), want)
	}
	checkFiles(t, cfg.ResultsDir, rs)
	for _, r := range rs {
		checkCounts(t, &r, sessions)
	}
}

// checkFiles: the report is there and results.jsonl reads back as rs.
func checkFiles(t *testing.T, dir string, rs []bench.Result) {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "results.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	back, err := bench.ReadJSONL(f)
	if err != nil || len(back) != len(rs) {
		t.Fatalf("results.jsonl: %d results, err %v; want %d", len(back), err, len(rs))
	}
	if st, err := os.Stat(filepath.Join(dir, "results.md")); err != nil || st.Size() == 0 {
		t.Fatalf("results.md: %v", err)
	}
}

// checkCounts: sessions opened = closed, nothing failed, bytes sent = bytes
// received, and the measured values a scenario promises are there.
func checkCounts(t *testing.T, r *bench.Result, sessions int) {
	t.Helper()
	name := r.Scenario + "/" + r.Target
	if len(r.Errors) > 0 || r.Failed != 0 {
		t.Errorf("%s: failed %d, errors %v", name, r.Failed, r.Errors)
	}
	if r.Opened != r.Closed || r.Opened < sessions {
		t.Errorf("%s: opened %d, closed %d, want both ≥ %d and equal", name, r.Opened, r.Closed, sessions)
	}
	if r.Scenario != "churn" && r.Opened != sessions {
		t.Errorf("%s: opened %d sessions, want %d", name, r.Opened, sessions)
	}
	if r.BytesSent == 0 || r.BytesSent != r.BytesReceived {
		t.Errorf("%s: bytes sent %d, received %d", name, r.BytesSent, r.BytesReceived)
	}
	if r.Seconds <= 0 {
		t.Errorf("%s: no measured phase", name)
	}
	switch r.Scenario {
	case "hold":
		if r.ProxyRSSBytes == 0 || r.ProxyFDs == 0 || r.Latency == nil {
			t.Errorf("%s: rss %d fds %d latency %v", name, r.ProxyRSSBytes, r.ProxyFDs, r.Latency)
		}
	case "echo", "churn", "mixed":
		if r.Latency == nil || r.Latency.Count == 0 || len(r.CDF) == 0 {
			t.Errorf("%s: no latency distribution", name)
		}
	case "stream-down", "stream-up":
		if r.MBps <= 0 {
			t.Errorf("%s: no throughput", name)
		}
	}
	if r.Scenario == "churn" && r.SessionsPerSecond <= 0 {
		t.Errorf("%s: no session rate", name)
	}
}

// testWriter sends the harness's progress to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// TestStreamRate: with --stream-rate the clients (stream-up) and the
// backends (stream-down) send at most that many payload bytes per second per
// session. The bound is checked against the whole run's wall-clock time,
// warm-up included, plus one frame per session: a loose upper bound that a
// slow machine cannot break (it only sends less), while flat out these
// sessions move hundreds of times more.
func TestStreamRate(t *testing.T) {
	haproxy := haproxyPath(t)
	const sessions, rate = 20, 256 << 10
	dir := t.TempDir()
	cfg := bench.Config{
		Targets: []string{"tcp-relay"}, Scenarios: []string{"stream-up", "stream-down"},
		Sessions: []int{sessions}, Rounds: 1, Duration: time.Second,
		ResultsDir: filepath.Join(dir, "results"), HaproxyPath: haproxy, Command: "cd bench && go test ./e2e",
		Params: bench.Params{StreamRate: rate},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	rs, err := bench.Run(ctx, cfg, testWriter{t})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	elapsed := time.Since(start).Seconds()
	for _, r := range rs {
		checkCounts(t, &r, sessions)
		bound := int64(float64(sessions*rate)*elapsed) + sessions*(64<<10)
		if r.BytesSent <= 0 || r.BytesSent > bound {
			t.Errorf("%s at %d B/s per session: %d bytes sent in %.1f s, want 1..%d", r.Scenario, rate, r.BytesSent, elapsed, bound)
		}
		t.Logf("%s: %d bytes in %.1f s of run, %.0f B/s per session over the measured %.1f s",
			r.Scenario, r.BytesSent, elapsed, r.MBps*1e6/sessions, r.Seconds)
	}
}
