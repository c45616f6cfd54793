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

	"github.com/consoleproxy/consoleproxy/bench"
)

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "consolebench:", err)
		os.Exit(2)
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

func parseFlags(args []string) (bench.Config, error) {
	var c bench.Config
	p := &c.Params
	fs := flag.NewFlagSet("consolebench", flag.ContinueOnError)
	targets := fs.String("targets", "consoleproxy,tcp-relay", "comma-separated targets: "+strings.Join(bench.TargetNames(), ","))
	scenarios := fs.String("scenarios", strings.Join(bench.AllScenarios(), ","), "comma-separated scenarios")
	sessions := fs.String("sessions", "100", "comma-separated session counts; each scenario runs at each")
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
	fs.DurationVar(&p.BurstInterval, "burst-interval", 0, "mixed: mean time between bursts per session (default 1s)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.Targets, c.Scenarios = splitList(*targets), splitList(*scenarios)
	c.ConsoleproxyArgs = strings.Fields(*cpArgs)
	var err error
	if c.Sessions, err = intList(*sessions); err != nil {
		return c, fmt.Errorf("--sessions: %w", err)
	}
	if c.Caps, err = capList(*caps); err != nil {
		return c, fmt.Errorf("--cap: %w", err)
	}
	if c.Command == "" {
		c.Command = "consolebench " + strings.Join(args, " ")
	}
	return c, nil
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
