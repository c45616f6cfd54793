package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/consoleproxy/consoleproxy/bench"
	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

// haproxyPath finds the TCP relay the reference target runs.
func haproxyPath(t *testing.T) string {
	t.Helper()
	return testutil.NeedBinary(t, "haproxy", "/usr/sbin")
}

// runHostile runs cfg's hostile scenarios briefly and returns the results
// by scenario.
func runHostile(t *testing.T, cfg bench.Config) map[string]bench.Result {
	t.Helper()
	cfg.ResultsDir = filepath.Join(t.TempDir(), "results")
	cfg.Duration = 500 * time.Millisecond
	cfg.Command = "cd bench && go test ./e2e"
	cfg.Params.HostileSettle = 3 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rs, err := bench.Run(ctx, cfg, testWriter{t})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	out := map[string]bench.Result{}
	for _, r := range rs {
		if r.Hostile == nil {
			t.Fatalf("%s/%s: no hostile result", r.Scenario, r.Target)
		}
		out[r.Scenario] = r
	}
	if len(out) != len(cfg.Scenarios) {
		t.Fatalf("%d results for %d scenarios", len(out), len(cfg.Scenarios))
	}
	return out
}

// TestHostileHaproxy: every hostile scenario against haproxy, whose
// outcome is known: bounded buffers, every socket closed once its peers are
// gone, every byte relayed once. Each passes, with readings that show the
// attack happened (the proxy held the attack's sockets at its peak) and
// returned.
func TestHostileHaproxy(t *testing.T) {
	t.Parallel()
	cfg := bench.Config{Targets: []string{"tcp-relay"}, Scenarios: bench.HostileScenarios(),
		HaproxyPath: haproxyPath(t), HostileSessions: []int{8}}
	for name, r := range runHostile(t, cfg) {
		h := r.Hostile
		if !h.Passed() || len(r.Errors) > 0 {
			t.Errorf("%s: failures %q, errors %q", name, h.Failures, r.Errors)
		}
		if h.Before.FDs == 0 || h.Before.RSSBytes == 0 || h.After.FDs != h.Before.FDs {
			t.Errorf("%s: before %+v after %+v", name, h.Before, h.After)
		}
		if h.Before.Goroutines != -1 || h.Peak.Goroutines != -1 {
			t.Errorf("%s: goroutines read from haproxy: %+v", name, h.Peak)
		}
		if name != "reset-storm" && h.Peak.FDs < h.Before.FDs+8 {
			t.Errorf("%s: peak %d fds, before %d: the attack's connections never showed", name, h.Peak.FDs, h.Before.FDs)
		}
		if r.Opened < 8 || r.Closed != r.Opened {
			t.Errorf("%s: opened %d closed %d", name, r.Opened, r.Closed)
		}
		switch name {
		case "frame-storm", "upload-slow-host":
			if r.BytesSent == 0 || r.BytesSent != r.BytesReceived {
				t.Errorf("%s: sent %d, hosts received %d", name, r.BytesSent, r.BytesReceived)
			}
		case "reset-storm":
			if r.BytesReceived == 0 || r.BytesReceived > r.BytesSent || r.Opened != 8*5 {
				t.Errorf("%s: %d sessions, sent %d, hosts received %d", name, r.Opened, r.BytesSent, r.BytesReceived)
			}
		}
	}
}

// TestHostileDetects: a tiny proxy (testdata/tinyproxy) run as the
// consoleproxy target, clean and with one known bug each: the clean one
// passes, and each bug fails its scenario for the reason it causes.
func TestHostileDetects(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tiny := filepath.Join(dir, "tinyproxy")
	if out, err := exec.Command("go", "build", "-o", tiny, "./testdata/tinyproxy").CombinedOutput(); err != nil {
		t.Fatalf("building tinyproxy: %v\n%s", err, out)
	}
	scenarios := []string{"pong-flood", "reset-storm", "zero-window"}
	clean := runHostile(t, bench.Config{Targets: []string{"consoleproxy"}, Scenarios: scenarios, ConsoleproxyPath: tiny})
	for _, name := range scenarios {
		r := clean[name]
		if !r.Hostile.Passed() {
			t.Errorf("clean %s: failures %q", name, r.Hostile.Failures)
		}
		if g := r.Hostile.Before.Goroutines; g <= 0 {
			t.Errorf("clean %s: goroutines %d, want read from /metrics", name, g)
		}
	}
	for _, tc := range []struct {
		bug, scenario string
		want          []string // in the failures
	}{
		{"pong-leak", "pong-flood", []string{"not back to baseline", "RSS"}},
		{"masked", "reset-storm", []string{"compute-host connections received bytes no client sent"}},
		{"leak-host", "zero-window", []string{"not back to baseline", "fds", "compute-host connections still open"}},
	} {
		r := runHostile(t, bench.Config{Targets: []string{"consoleproxy"}, Scenarios: []string{tc.scenario},
			ConsoleproxyPath: tiny, ConsoleproxyArgs: []string{"--bug", tc.bug}})[tc.scenario]
		all := strings.Join(r.Hostile.Failures, "; ")
		for _, w := range tc.want {
			if !strings.Contains(all, w) {
				t.Errorf("--bug %s, %s: failures %q lack %q", tc.bug, tc.scenario, all, w)
			}
		}
		if tc.bug == "masked" && (r.Hostile.Corrupt == 0 || len(r.Hostile.CorruptDetails) == 0) {
			t.Errorf("--bug masked: corrupt %d, details %q", r.Hostile.Corrupt, r.Hostile.CorruptDetails)
		}
		if tc.bug == "leak-host" && r.Hostile.HostsOpen == 0 {
			t.Errorf("--bug leak-host: no host connection counted open")
		}
	}
}
