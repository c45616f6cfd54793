// Command consolebench drives console sessions through WebSocket-to-TCP
// proxies (consoleproxy, websockify, a plain TCP relay for reference), side
// by side, and writes the results (JSON Lines, a Markdown table, plots).
// Flags → bench.Config → bench.Run; everything else lives in package bench.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/consoleproxy/consoleproxy/bench"
)

func main() {
	cfg, soak, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "consolebench:", err)
		os.Exit(2)
	}
	if soak.Duration > 0 {
		os.Exit(runSoak(cfg, soak))
	}
	if cfg.ReportFrom != "" {
		if err := report(cfg); err != nil {
			fmt.Fprintln(os.Stderr, "consolebench:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rs, err := bench.Run(ctx, cfg, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "consolebench:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "consolebench: %d runs; report in %s\n", len(rs), cfg.ResultsDir)
	if fails := bench.HostileFailures(rs); len(fails) > 0 {
		fmt.Fprintf(os.Stderr, "consolebench: %d hostile runs FAILED:\n", len(fails))
		for _, f := range fails {
			fmt.Fprintln(os.Stderr, "  "+f)
		}
		os.Exit(3)
	}
}

// runSoak runs --soak and returns the exit code: 0 passed, 1 could not
// run, 3 failed (drift, corruption, a long-lived session broken).
func runSoak(cfg bench.Config, sc bench.SoakConfig) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := bench.Soak(ctx, cfg, sc, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "consolebench: soak:", err)
		return 1
	}
	if err := bench.WriteSoakSummary(os.Stderr, rep); err != nil {
		return 1
	}
	f, err := os.Create(filepath.Join(cfg.ResultsDir, "soak.txt"))
	if err == nil {
		err = bench.WriteSoakSummary(f, rep)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "consolebench: soak summary:", err)
		return 1
	}
	if !rep.Passed() {
		return 3
	}
	return 0
}

// report renders the reports of an earlier run from its results.jsonl
// (--report FILE), into FILE's folder and --benchmarks-md.
func report(cfg bench.Config) error {
	f, err := os.Open(cfg.ReportFrom)
	if err != nil {
		return err
	}
	defer f.Close()
	rs, err := bench.ReadJSONL(f)
	if err != nil {
		return err
	}
	cfg.ResultsDir = filepath.Dir(cfg.ReportFrom)
	return bench.Report(cfg, rs)
}

func parseFlags(args []string) (bench.Config, bench.SoakConfig, error) {
	var c bench.Config
	var sk bench.SoakConfig
	p := &c.Params
	fs := flag.NewFlagSet("consolebench", flag.ContinueOnError)
	targets := fs.String("targets", "consoleproxy,tcp-relay", "comma-separated targets: "+strings.Join(bench.TargetNames(), ","))
	scenarios := fs.String("scenarios", strings.Join(bench.AllScenarios(), ","),
		"comma-separated scenarios; the hostile ones ("+strings.Join(bench.HostileScenarios(), ",")+
			") fail the command (exit 3) when the proxy does not give back what they took; the TLS ones ("+
			strings.Join(bench.TLSScenarios(), ",")+") get their own section of the report")
	sessions := fs.String("sessions", "100", "comma-separated session counts; each load scenario runs at each")
	hostileSessions := fs.String("hostile-sessions", "", "comma-separated session counts for the hostile scenarios (default: each its own, 10 to 200)")
	caps := fs.String("cap", "websockify=500", "per-target session caps, target=N,… (websockify drops connections past ~507)")
	fs.StringVar(&c.Reference, "reference", "tcp-relay", "the target the others are compared with")
	fs.IntVar(&c.Rounds, "rounds", 1, "rounds; targets alternate within each, medians over them")
	fs.DurationVar(&c.Duration, "duration", 0, "measured phase of each run (default 5s)")
	fs.DurationVar(&c.OpenTimeout, "open-timeout", 0, "bound on opening a run's sessions (default 60s)")
	fs.StringVar(&c.ResultsDir, "results", "bench-results", "results folder (results.jsonl, results.md, plots, proxy logs)")
	fs.StringVar(&c.BenchmarksMD, "benchmarks-md", "", "also write this BENCHMARKS.md (plots under docs/bench beside it)")
	fs.StringVar(&c.ReportFrom, "report", "", "run nothing: render the reports again from this results.jsonl of an earlier run (give that run's --command, --sessions and --cap)")
	fs.StringVar(&c.Command, "command", "", "the command line quoted in the report (default: this one)")
	fs.IntVar(&c.Loops, "loops", 0, "client event loops (default: number of CPUs)")
	fs.IntVar(&c.SourceAddrs, "source-addrs", 8, "loopback source addresses 127.0.0.2… to spread connections over")
	fs.IntVar(&c.MaxInflight, "max-inflight", 32, "connects and handshakes in flight per client loop")
	fs.StringVar(&c.ConsoleproxyPath, "consoleproxy", "bin/consoleproxy", "consoleproxy binary")
	cpArgs := fs.String("consoleproxy-args", "", "extra flags for consoleproxy, space-separated")
	fs.StringVar(&c.WebsockifyPath, "websockify", "/usr/bin/websockify", "websockify binary")
	fs.StringVar(&c.HaproxyPath, "haproxy", "/usr/sbin/haproxy", "haproxy binary (the tcp-relay target)")
	fs.Float64Var(&p.EchoRate, "echo-rate", 10, "echo: messages per second per session")
	fs.Float64Var(&p.EchoMaxTotal, "echo-max-total", 0, "echo: cap on messages per second over all sessions, lowering the per-session rate at large counts; 0 is none")
	fs.IntVar(&p.EchoSize, "echo-size", 64, "echo, churn, mixed typing: message bytes (at least 8)")
	fs.IntVar(&p.FrameSize, "frame-size", 4096, "stream-up: payload bytes per WebSocket frame")
	fs.Int64Var(&p.StreamRate, "stream-rate", 0, "stream-down and stream-up: payload bytes per second per session (the backends' sending, the clients' sending); 0 is flat out")
	fs.IntVar(&p.ChurnMessages, "churn-echoes", 1, "churn: echoes per session before it closes")
	fs.Float64Var(&p.TypingShare, "mixed-typing", 0.2, "mixed: share of sessions typing")
	fs.Float64Var(&p.BurstShare, "mixed-bursts", 0.1, "mixed: share of sessions receiving screen bursts")
	fs.Float64Var(&p.TypingRate, "typing-rate", 5, "mixed: keystrokes per second per typing session")
	fs.IntVar(&p.BurstBytes, "burst-bytes", 128<<10, "mixed: bytes per screen burst")
	fs.DurationVar(&p.BurstInterval, "burst-interval", 0, "mixed: mean time between bursts per session (default 1s; each gap 0.5-1.5 times it, drawn alike for every target of a round)")
	fs.DurationVar(&p.HostileSettle, "hostile-settle", 0, "hostile: bound on the wait for the proxy to give back fds, goroutines and RSS once the clients are gone (default 15s)")
	fs.Int64Var(&p.SlowHostRate, "slow-host-rate", 0, "upload-slow-host: bytes per second each compute host reads (default 2 MiB/s)")
	fs.IntVar(&p.StormFrames, "storm-frames", 0, "frame-storm: 1-2 byte frames per write (default 4096)")
	fs.IntVar(&p.ResetWaves, "reset-waves", 0, "reset-storm: waves of sessions at most, within --duration (default 5)")
	fs.IntVar(&p.HandshakeCount, "handshakes", 0, "tls-handshakes-*: full handshakes per run at most, within --duration (default 2000, at most 20000)")
	fs.IntVar(&p.HandshakeConcurrency, "handshake-concurrency", 0, "tls-handshakes-*: handshakes in flight at once, the scenarios' only size (default 16)")
	fs.DurationVar(&sk.Duration, "soak", 0, "run a soak of this long instead (scripts/soak.sh): the first --targets entry, long-lived mixed sessions, churn and the hostile scenarios in a loop; fails (exit 3) on an upward drift of RSS, fds or goroutines")
	fs.IntVar(&sk.Sessions, "soak-sessions", 50, "soak: long-lived mixed sessions")
	fs.IntVar(&sk.Churn, "soak-churn", 4, "soak: sessions churning at once")
	fs.DurationVar(&sk.Phase, "soak-phase", time.Second, "soak: each hostile step's attack")
	fs.StringVar(&sk.Plot, "soak-plot", "", "soak: the plot (PNG) of RSS, fds and goroutines over time (default RESULTS/soak.png)")
	if err := fs.Parse(args); err != nil {
		return c, sk, err
	}
	c.Targets, c.Scenarios = splitList(*targets), splitList(*scenarios)
	c.ConsoleproxyArgs = strings.Fields(*cpArgs)
	var err error
	if c.Sessions, err = intList(*sessions); err != nil {
		return c, sk, fmt.Errorf("--sessions: %w", err)
	}
	if c.HostileSessions, err = intList(*hostileSessions); err != nil {
		return c, sk, fmt.Errorf("--hostile-sessions: %w", err)
	}
	if len(c.HostileSessions) > 0 {
		sk.Hostile = c.HostileSessions[0]
	}
	if sk.Duration > 0 && fs.Lookup("scenarios").Value.String() != fs.Lookup("scenarios").DefValue {
		sk.Scenarios = c.Scenarios
	}
	if c.Caps, err = capList(*caps); err != nil {
		return c, sk, fmt.Errorf("--cap: %w", err)
	}
	if c.Command == "" {
		c.Command = "consolebench " + strings.Join(args, " ")
	}
	return c, sk, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func intList(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", f, err)
		}
		out = append(out, n)
	}
	return out, nil
}

func capList(s string) (map[string]int, error) {
	out := map[string]int{}
	for _, f := range splitList(s) {
		name, num, ok := strings.Cut(f, "=")
		n, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("%q: want target=N", f)
		}
		out[name] = n
	}
	return out, nil
}
