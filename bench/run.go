package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Run executes every scenario at every size against every target, in
// rounds, the targets alternating (the order rotates each round), and
// writes the report into cfg.ResultsDir (and cfg.BenchmarksMD when set).
// Progress and notes go to log. It returns the results even when the report
// fails.
func Run(ctx context.Context, cfg Config, log io.Writer) ([]Result, error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	limit, err := RaiseFileLimit()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.ResultsDir, 0o755); err != nil {
		return nil, fmt.Errorf("results directory: %w", err)
	}
	jl, err := os.Create(filepath.Join(cfg.ResultsDir, "results.jsonl"))
	if err != nil {
		return nil, fmt.Errorf("results file: %w", err)
	}
	defer jl.Close()
	fmt.Fprintf(log, "consolebench: open-file limit %d; results in %s\n", limit, cfg.ResultsDir)
	rs, err := runAll(ctx, cfg, int(limit), log, jl)
	if err != nil {
		return rs, err
	}
	return rs, writeReports(cfg, rs)
}

// Report writes cfg's reports (results.md in cfg.ResultsDir, and
// cfg.BenchmarksMD if set) from rs, results read back from a results.jsonl,
// without running anything: a report of an earlier run, rendered again.
func Report(cfg Config, rs []Result) error {
	if err := os.MkdirAll(cfg.ResultsDir, 0o755); err != nil {
		return fmt.Errorf("results folder: %w", err)
	}
	return writeReports(cfg, rs)
}

// writeReports writes results.md (and BENCHMARKS.md when asked). A run of
// load scenarios rewrites BENCHMARKS.md but keeps its "Hostile clients"
// section; a run of hostile scenarios replaces only that section, so the
// two kinds of run can refresh the page independently. The TLS scenarios'
// section ("TLS", with its own notes) is kept or replaced the same way.
func writeReports(cfg Config, rs []Result) error {
	load, hostile := splitHostile(rs)
	load, tlsRs := splitTLS(load)
	var notes []string
	if len(load) > 0 {
		notes = runNotes(cfg, load)
	}
	if err := WriteReport(cfg.ResultsDir, rs, cfg.Reference, cfg.Command); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := appendNotes(filepath.Join(cfg.ResultsDir, "results.md"), notes); err != nil {
		return err
	}
	if cfg.BenchmarksMD == "" {
		return nil
	}
	section, tlsSection := hostileSectionOf(cfg.BenchmarksMD), tlsSectionOf(cfg.BenchmarksMD)
	kept := keptSectionsOf(cfg.BenchmarksMD)
	if len(hostile) > 0 {
		var err error
		if section, err = hostileMarkdown(hostile, cfg.Command); err != nil {
			return err
		}
	}
	if len(load) > 0 {
		plots := filepath.Join(filepath.Dir(cfg.BenchmarksMD), "docs", "bench")
		if err := WriteBenchmarksMD(cfg.BenchmarksMD, plots, load, cfg.Reference, cfg.Command); err != nil {
			return fmt.Errorf("benchmarks page: %w", err)
		}
		if err := appendNotes(cfg.BenchmarksMD, notes); err != nil {
			return err
		}
	}
	if section != "" {
		if err := putHostileSection(cfg.BenchmarksMD, section); err != nil {
			return err
		}
	}
	if err := putTLSSectionOf(cfg, tlsRs, tlsSection); err != nil {
		return err
	}
	return putKeptSections(cfg.BenchmarksMD, kept)
}

// runAll is the rounds × scenarios × sizes × targets loop; each result is
// appended to jl as it lands.
func runAll(ctx context.Context, cfg Config, fdLimit int, log io.Writer, jl io.Writer) ([]Result, error) {
	var rs []Result
	prog := newProgress(log)
	for _, note := range cfg.capNotes() {
		prog.note(note)
	}
	for round := 1; round <= cfg.Rounds; round++ {
		for _, sc := range cfg.Scenarios {
			for _, n := range cfg.sizesOf(scenarioByName(sc)) {
				for i := range cfg.Targets {
					t := cfg.Targets[(i+round-1)%len(cfg.Targets)]
					if limit, ok := cfg.Caps[t]; ok && limit > 0 && n > limit {
						continue
					}
					start := time.Now()
					r := runOne(ctx, cfg, runKey{sc, t, round, n}, fdLimit, prog)
					prog.note(fmt.Sprintf("%s (%.0fs)", summaryLine(&r), time.Since(start).Seconds()))
					rs = append(rs, r)
					if err := WriteJSONL(jl, []Result{r}); err != nil {
						return rs, fmt.Errorf("results file: %w", err)
					}
					if ctx.Err() != nil {
						return rs, ctx.Err()
					}
				}
			}
		}
	}
	return rs, nil
}

type runKey struct {
	scenario, target string
	round, sessions  int
}

// runOne is one measured run; whatever breaks is recorded in the Result.
func runOne(ctx context.Context, cfg Config, k runKey, fdLimit int, prog *progress) Result {
	sc := scenarioByName(k.scenario)
	r := Result{Scenario: k.scenario, Target: k.target, Round: k.round, Sessions: k.sessions,
		Params: map[string]string{}}
	for key, v := range sc.params(cfg.Params) {
		r.Params[key] = v
	}
	if err := runEnv(ctx, cfg, sc, k, fdLimit, prog, &r); err != nil {
		r.Errors = append(r.Errors, err.Error())
		r.Failed = max(r.Failed, k.sessions-r.Opened)
	}
	return r
}

func runEnv(ctx context.Context, cfg Config, sc *scenario, k runKey, fdLimit int, prog *progress, r *Result) error {
	dir := filepath.Join(cfg.ResultsDir, "logs", fmt.Sprintf("r%d-%s-%d-%s", k.round, k.scenario, k.sessions, k.target))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("log directory: %w", err)
	}
	if sc.hostile != nil {
		return runHostile(ctx, cfg, sc, k, dir, r)
	}
	if sc.tls != nil {
		return runTLS(ctx, cfg, sc, k, dir, r)
	}
	p := cfg.Params
	backend, err := StartBackend(BackendConfig{Rate: p.StreamRate, BurstBytes: p.BurstBytes, BurstInterval: p.BurstInterval,
		BurstSeed: uint64(k.round)})
	if err != nil {
		return err
	}
	defer backend.Close()
	tokens := sc.tokens(p, k.sessions)
	target := targets[k.target](cfg)
	ep, err := target.Start(ctx, RunSpec{Dir: dir, Tokens: tokens, Backend: backend, MaxConn: k.sessions})
	if err != nil {
		return err
	}
	defer target.Stop()
	client, err := NewClient(ClientConfig{Loops: cfg.Loops, SourceAddrs: cfg.SourceAddrs, MaxInflight: cfg.MaxInflight,
		WebSocket: ep.WebSocket, Addrs: ep.Addrs, Host: ep.Host, Path: ep.Path, MsgSize: p.EchoSize,
		FrameSize: p.FrameSize, StreamRate: p.StreamRate, ChurnMessages: p.ChurnMessages, TokenPool: len(tokens), FDLimit: fdLimit})
	if err != nil {
		return err
	}
	defer client.Close()
	e := &env{ctx: ctx, cfg: cfg, n: k.sessions, spec: sc, target: target, backend: backend, client: client, res: r,
		rest: SampleTree(target.PID())}
	stop := prog.start(fmt.Sprintf("round %d %s %s n=%d", k.round, k.scenario, k.target, k.sessions), client, k.sessions)
	err = sc.measure(e)
	stop()
	e.finish()
	return err
}

// finish closes every session and fills the counts, latency and errors.
func (e *env) finish() {
	e.client.CloseAll()
	e.client.WaitFor(5*time.Second, func(t Totals) bool { return t.Live == 0 })
	t := e.client.Totals()
	r := e.res
	r.Opened, r.Failed, r.Closed, r.Messages = int(t.Opened), int(t.Failed), int(t.Closed), t.Messages
	rtt, hs, errs := e.client.Collect()
	h := rtt
	if e.spec.handshakes {
		h = hs
	}
	if h.Count() > 0 {
		r.Latency, r.CDF = h.Percentiles(), h.CDF(200)
	}
	r.Errors = append(r.Errors, errorList(errs)...)
}

// summaryLine is the one-line outcome of a run for the log.
func summaryLine(r *Result) string {
	s := fmt.Sprintf("%-11s %-12s round %d n=%-5d opened %d failed %d closed %d, sent %d recv %d, proxy cpu %.2fs client cpu %.2fs",
		r.Scenario, r.Target, r.Round, r.Sessions, r.Opened, r.Failed, r.Closed, r.BytesSent, r.BytesReceived,
		r.ProxyCPUSeconds, r.ClientCPUSeconds)
	if r.MBps > 0 {
		s += fmt.Sprintf(", %.1f MB/s", r.MBps)
	}
	if r.Latency != nil {
		s += fmt.Sprintf(", p50 %.3f p99 %.3f ms", r.Latency.P50, r.Latency.P99)
	}
	if r.RSSPerSession != 0 {
		s += fmt.Sprintf(", %.0f B RSS/session", r.RSSPerSession)
	}
	if h := r.Hostile; h != nil {
		s += ", " + hostileLine(h)
	}
	if len(r.Errors) > 0 {
		s += fmt.Sprintf(", errors %v", r.Errors)
	}
	return s
}

// hostileLine is a hostile run's readings and verdict on one line.
func hostileLine(h *HostileResult) string {
	verdict := "PASS"
	if !h.Passed() {
		verdict = "FAIL"
	}
	return fmt.Sprintf("RSS %s/%s/%s, fds %d/%d/%d, goroutines %s/%s/%s (before/peak/after), %s",
		mib(h.Before.RSSBytes), mib(h.Peak.RSSBytes), mib(h.After.RSSBytes),
		h.Before.FDs, h.Peak.FDs, h.After.FDs,
		goroutineCell(h.Before.Goroutines), goroutineCell(h.Peak.Goroutines), goroutineCell(h.After.Goroutines), verdict)
}

// goroutineCell prints a goroutine count, "-" when not measured.
func goroutineCell(g int) string {
	if g < 0 {
		return "-"
	}
	return fmt.Sprint(g)
}
