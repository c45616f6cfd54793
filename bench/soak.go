package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// The soak: one proxy process for the whole DURATION, a steady background
// of long-lived mixed sessions (typing, screen bursts, idle) and churning
// sessions, and the hostile scenarios one after another on top, in a loop.
// The proxy's RSS, fds and goroutines are read every second into a CSV and
// plotted; the soak fails on an upward drift (DriftRule), on a compute
// host receiving a byte no client sent, or when a long-lived session broke.
// Other failures of the hostile steps (a cut upload, a session ended by a
// frame storm) are reported as warnings: judging them is the hostile runs'
// job (the steps here share the proxy with the background, so their
// baselines would be the background's).

// SoakConfig is a soak run; zero fields take the defaults in brackets.
type SoakConfig struct {
	Duration  time.Duration // the whole soak [10m]
	Interval  time.Duration // between readings [1s]
	Sessions  int           // long-lived mixed sessions [50]
	Churn     int           // sessions churning at once [4]
	Phase     time.Duration // each hostile step's attack [1s]
	Hostile   int           // sessions per hostile step [each scenario's own size]
	Scenarios []string      // the hostile steps, in turn [all hostile scenarios]
	CSV       string        // readings [ResultsDir/soak.csv]
	Plot      string        // the plot, PNG [ResultsDir/soak.png]
}

func (s SoakConfig) defaults(resultsDir string) SoakConfig {
	if s.Duration <= 0 {
		s.Duration = 10 * time.Minute
	}
	if s.Interval <= 0 {
		s.Interval = time.Second
	}
	if s.Sessions <= 0 {
		s.Sessions = 50
	}
	if s.Churn <= 0 {
		s.Churn = 4
	}
	if s.Phase <= 0 {
		s.Phase = time.Second
	}
	if len(s.Scenarios) == 0 {
		s.Scenarios = HostileScenarios()
	}
	if s.CSV == "" {
		s.CSV = filepath.Join(resultsDir, "soak.csv")
	}
	if s.Plot == "" {
		s.Plot = filepath.Join(resultsDir, "soak.png")
	}
	return s
}

// SoakSample is one reading: seconds since the soak began, the proxy, and
// the hostile step under way ("" between steps).
type SoakSample struct {
	Seconds float64
	Res     Resources
	Step    string
}

// SoakStep is one hostile step of the soak.
type SoakStep struct {
	Start, End float64 // seconds since the soak began
	Scenario   string
	Failures   []string
}

// SoakReport is a soak's outcome.
type SoakReport struct {
	Target   string
	Samples  []SoakSample
	Steps    []SoakStep
	Cycles   int // complete passes over the hostile steps
	Drift    DriftReport
	Failures []string // why the soak failed; empty: it passed
	Warnings []string
}

// Passed reports whether the soak passed.
func (r *SoakReport) Passed() bool { return len(r.Failures) == 0 }

// DriftRule is the soak's test for an upward drift. The first quarter of
// the run, or the first complete pass over the hostile steps when that
// takes longer, is warm-up (heaps and pools growing to their working
// size). The rest is cut at the start of the last quarter: the reference
// window before it, the last window after. Each figure's floor (its
// minimum reading) in the last window must not exceed its floor in the
// reference window by more than Tol. Floors, not means: the attacks come
// and go, and a floor is what the proxy keeps when none is under way. A
// leak raises the floor with every pass; a spike does not.
type DriftRule struct {
	Tol Tolerance
}

// soakDrift is the default rule: fds may differ by the churning sessions'
// sockets in flight (two each) plus two, goroutines by 4, RSS by
// max(16 MiB, 10 %).
func soakDrift(churn int) DriftRule {
	return DriftRule{Tol: Tolerance{FDs: 2*churn + 2, Goroutines: 4, RSSBytes: 16 << 20, RSSFraction: 0.10}}
}

// DriftReport is what the rule saw.
type DriftReport struct {
	RefStart, LastStart, End float64   // seconds: reference window [RefStart, LastStart), last [LastStart, End]
	RefFloor, LastFloor      Resources // the floors
	Failures                 []string
}

// Check applies the rule to samples; warmupEnd is when the first complete
// pass over the hostile steps ended (≤ 0: it never did).
func (d DriftRule) Check(samples []SoakSample, warmupEnd float64) DriftReport {
	var rep DriftReport
	if len(samples) == 0 {
		rep.Failures = []string{"no readings"}
		return rep
	}
	rep.End = samples[len(samples)-1].Seconds
	rep.LastStart = rep.End * 3 / 4
	rep.RefStart = max(rep.End/4, warmupEnd)
	if warmupEnd <= 0 || rep.RefStart >= rep.LastStart {
		rep.Failures = []string{fmt.Sprintf("too short to judge a drift: the warm-up (first quarter, or the first pass over the hostile steps: %.0f s) "+
			"must end before the last quarter starts (%.0f s); run longer", warmupEnd, rep.LastStart)}
		return rep
	}
	ref, refN := floorOf(samples, rep.RefStart, rep.LastStart)
	last, lastN := floorOf(samples, rep.LastStart, rep.End+1)
	rep.RefFloor, rep.LastFloor = ref, last
	if refN == 0 || lastN == 0 {
		rep.Failures = []string{"too few readings to judge a drift"}
		return rep
	}
	for _, why := range d.Tol.Exceeded(ref, last) {
		rep.Failures = append(rep.Failures, fmt.Sprintf("upward drift: last-quarter floor above the floor of %.0f–%.0f s: %s",
			rep.RefStart, rep.LastStart, strings.Replace(why, "baseline", "reference floor", 1)))
	}
	return rep
}

// floorOf is each figure's minimum over the samples in [from, to), and how
// many there were; goroutines stay -1 when none measured them.
func floorOf(samples []SoakSample, from, to float64) (Resources, int) {
	f := Resources{RSSBytes: -1, FDs: -1, Goroutines: noGoroutines}
	n := 0
	for _, s := range samples {
		if s.Seconds < from || s.Seconds >= to {
			continue
		}
		if n == 0 || s.Res.RSSBytes < f.RSSBytes {
			f.RSSBytes = s.Res.RSSBytes
		}
		if n == 0 || s.Res.FDs < f.FDs {
			f.FDs = s.Res.FDs
		}
		if g := s.Res.Goroutines; g >= 0 && (f.Goroutines < 0 || g < f.Goroutines) {
			f.Goroutines = g
		}
		n++
	}
	return f, n
}

// soakQuiet is the pause after each hostile step: readings with only the
// background running, which the drift rule's floors come from.
const soakQuiet = time.Second

// Soak runs a soak against cfg's first target. Progress goes to log. The
// error is for a soak that could not run; a soak that ran and failed says
// so in the report.
func Soak(ctx context.Context, cfg Config, sc SoakConfig, log io.Writer) (*SoakReport, error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sc = sc.defaults(cfg.ResultsDir)
	var steps []*scenario
	for _, n := range sc.Scenarios {
		s := scenarioByName(n)
		if s == nil || s.hostile == nil {
			return nil, fmt.Errorf("soak: %q is not a hostile scenario (have %v)", n, HostileScenarios())
		}
		steps = append(steps, s)
	}
	limit, err := RaiseFileLimit()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(cfg.ResultsDir, "logs", "soak")
	for _, d := range []string{dir, filepath.Dir(sc.CSV), filepath.Dir(sc.Plot)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("soak: %w", err)
		}
	}
	s := &soak{cfg: cfg, sc: sc, steps: steps, log: log, rep: &SoakReport{Target: cfg.Targets[0]}, fdLimit: int(limit)}
	if err := s.run(ctx, dir); err != nil {
		return s.rep, err
	}
	return s.rep, nil
}

// soak is a soak in progress.
type soak struct {
	cfg     Config
	sc      SoakConfig
	steps   []*scenario
	log     io.Writer
	rep     *SoakReport
	fdLimit int

	backend *Backend
	ep      Endpoint
	layout  soakLayout
	start   time.Time
	mu      sync.Mutex // guards step and rep.Samples
	step    string
}

// soakLayout places each part's tokens in one table: the mixed sessions,
// the churn pool, then per hostile step two copies of its tokens used in
// turn (an exclusive token comes back a whole pass later).
type soakLayout struct {
	modes []Mode
	churn int   // first churn token
	steps []int // first token of each step's first copy
	sizes []int // sessions of each step
	width []int // tokens in one copy
}

func (s *soak) plan() {
	p := s.cfg.Params
	l := soakLayout{modes: mixedTokens(p, s.sc.Sessions)}
	l.churn = len(l.modes)
	l.modes = append(l.modes, allModes(ModeEcho)(p, churnPool(s.sc.Churn))...)
	for _, st := range s.steps {
		n := st.hostile.size
		if s.sc.Hostile > 0 {
			n = s.sc.Hostile
		}
		toks := st.hostile.tokens(n)
		l.steps = append(l.steps, len(l.modes))
		l.sizes = append(l.sizes, n)
		l.width = append(l.width, len(toks))
		l.modes = append(l.modes, toks...)
		l.modes = append(l.modes, toks...)
	}
	s.layout = l
}

func (s *soak) logf(format string, args ...any) {
	fmt.Fprintf(s.log, "soak %5.0fs: %s\n", time.Since(s.start).Seconds(), fmt.Sprintf(format, args...))
}

func (s *soak) run(ctx context.Context, dir string) error {
	p := s.cfg.Params
	var err error
	s.backend, err = StartBackend(BackendConfig{Rate: p.StreamRate, BurstBytes: p.BurstBytes,
		BurstInterval: p.BurstInterval, SlowRate: p.SlowHostRate})
	if err != nil {
		return err
	}
	defer s.backend.Close()
	s.backend.QuiesceMode(ModeFirehose) // only zero-window's steps open firehoses
	tlsFiles, err := writeSelfSigned(dir)
	if err != nil {
		return err
	}
	s.plan()
	target := targets[s.rep.Target](s.cfg)
	s.ep, err = target.Start(ctx, RunSpec{Dir: dir, Tokens: s.layout.modes, Backend: s.backend,
		MaxConn: s.sc.Sessions + s.sc.Churn + 1024, Metrics: true, TLS: tlsFiles})
	if err != nil {
		return err
	}
	defer target.Stop()
	s.start = time.Now()
	rr := NewResourceReader(target.PID(), s.ep.MetricsURL)
	csv, err := newSoakCSV(s.sc.CSV)
	if err != nil {
		return err
	}
	stopSampling := sampleEvery(rr, s.sc.Interval, func(r Resources) {
		s.mu.Lock()
		smp := SoakSample{Seconds: time.Since(s.start).Seconds(), Res: r, Step: s.step}
		s.rep.Samples = append(s.rep.Samples, smp)
		s.mu.Unlock()
		csv.write(smp)
	})
	mixed, churn, err := s.background()
	if err == nil {
		s.hostileLoop(ctx)
		s.endBackground(mixed, churn)
	}
	stopSampling()
	if cerr := csv.close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	s.judge()
	return plotSoak(s.sc.Plot, s.rep)
}

// clientFor is a client of the soak's target whose token i is the table's
// token base+i.
func (s *soak) clientFor(base, pool int) (*Client, error) {
	p := s.cfg.Params
	path := s.ep.Path
	if path != nil {
		path = func(i int) string { return s.ep.Path(base + i) }
	}
	return NewClient(ClientConfig{Loops: 1, SourceAddrs: s.cfg.SourceAddrs, MaxInflight: s.cfg.MaxInflight,
		WebSocket: s.ep.WebSocket, Addrs: s.ep.Addrs, Host: s.ep.Host, Path: path, MsgSize: p.EchoSize,
		FrameSize: p.FrameSize, ChurnMessages: p.ChurnMessages, TokenPool: pool, FDLimit: s.fdLimit})
}

// background opens the long-lived mixed sessions (typing paced, bursts
// on) and starts the churn.
func (s *soak) background() (mixed, churn *Client, err error) {
	p := s.cfg.Params
	if mixed, err = s.clientFor(0, 0); err != nil {
		return nil, nil, err
	}
	ss := mixedSessions(p, s.sc.Sessions)
	mixed.Open(ss)
	mixed.WaitFor(s.cfg.OpenTimeout, func(t Totals) bool { return t.Started >= int64(len(ss)) && t.Started == t.Live+t.Ended() })
	if t := mixed.Totals(); t.Opened < int64(len(ss)) {
		mixed.Close()
		return nil, nil, fmt.Errorf("soak: %d of %d long-lived sessions opened", t.Opened, len(ss))
	}
	s.backend.StartSending()
	mixed.StartPacing(p.TypingRate)
	if churn, err = s.clientFor(s.layout.churn, churnPool(s.sc.Churn)); err != nil {
		mixed.Close()
		return nil, nil, err
	}
	churn.SetChurn(true)
	churn.Open(churnSessions(p, s.sc.Churn))
	s.logf("%d long-lived sessions open, %d churning", len(ss), s.sc.Churn)
	return mixed, churn, nil
}

// endBackground stops the background and checks that every long-lived
// session lived through the soak.
func (s *soak) endBackground(mixed, churn *Client) {
	churn.SetChurn(false)
	churn.WaitFor(drainTimeout, func(t Totals) bool { return t.Started == t.Ended() })
	ct := churn.Totals()
	_, _, cerrs := churn.Collect()
	churn.Close()
	mixed.StopPacing()
	mt := mixed.Totals()
	_, _, errs := mixed.Collect()
	mixed.CloseAll()
	mixed.Close()
	if mt.Failed > 0 {
		s.rep.Failures = append(s.rep.Failures, fmt.Sprintf("%d of %d long-lived sessions broke during the soak: %v",
			mt.Failed, mt.Opened, errorList(errs)))
	}
	if ct.Failed > 0 {
		s.rep.Warnings = append(s.rep.Warnings, fmt.Sprintf("%d of %d churning sessions failed: %v", ct.Failed, ct.Started, errorList(cerrs)))
	}
	s.logf("background: %d long-lived sessions, %d failed; %d churned sessions, %d failed", mt.Opened, mt.Failed, ct.Closed, ct.Failed)
}

// hostileLoop runs the hostile steps in turn until the soak's time is up
// (a step starts only when its phase still fits), then waits out the rest.
func (s *soak) hostileLoop(ctx context.Context) {
	deadline := s.start.Add(s.sc.Duration)
	for i := 0; ctx.Err() == nil && time.Until(deadline) > s.sc.Phase+soakQuiet; i++ {
		s.runStep(ctx, i%len(s.steps), i/len(s.steps))
		select {
		case <-time.After(soakQuiet):
		case <-ctx.Done():
		}
	}
	select {
	case <-time.After(time.Until(deadline)):
	case <-ctx.Done():
	}
}

// runStep runs hostile step k on the soak's proxy, on the copy of its
// tokens pass selects.
func (s *soak) runStep(ctx context.Context, k, pass int) {
	sc := s.steps[k]
	l := s.layout
	n := l.sizes[k]
	base := l.steps[k] + (pass%2)*l.width[k]
	h := newHostile(ctx, s.cfg.Params, sc.hostile, n, s.sc.Phase, s.ep, s.backend, s.cfg.SourceAddrs)
	h.attackT = func(i int) int { return base + i }
	h.probeT = func(j int) int { return base + sc.hostile.poolSize(n) + j }
	s.mu.Lock()
	s.step = sc.name
	s.mu.Unlock()
	st := SoakStep{Start: time.Since(s.start).Seconds(), Scenario: sc.name}
	failures, err := h.attackAndCheck()
	if err != nil {
		failures = append(failures, err.Error())
	}
	if errs := h.t.errors(); len(failures) > 0 && len(errs) > 0 {
		failures = append(failures, "client errors: "+strings.Join(errorList(errs), ", "))
	}
	st.End, st.Failures = time.Since(s.start).Seconds(), failures
	s.mu.Lock()
	s.step = ""
	s.rep.Steps = append(s.rep.Steps, st)
	s.mu.Unlock()
	verdict := "ok"
	if len(failures) > 0 {
		verdict = strings.Join(failures, "; ")
	}
	s.logf("%s (%d sessions): %s", sc.name, n, verdict)
}

// judge applies the drift rule and sorts the steps' failures into
// failures (corruption) and warnings.
func (s *soak) judge() {
	rep := s.rep
	rep.Cycles = len(rep.Steps) / len(s.steps)
	warmupEnd := 0.0
	if len(rep.Steps) >= len(s.steps) {
		warmupEnd = rep.Steps[len(s.steps)-1].End
	}
	for _, smp := range rep.Samples {
		if smp.Res.RSSBytes == 0 {
			rep.Failures = append(rep.Failures, fmt.Sprintf("the proxy process was gone at %.0f s", smp.Seconds))
			break
		}
	}
	rep.Drift = soakDrift(s.sc.Churn).Check(rep.Samples, warmupEnd)
	rep.Failures = append(rep.Failures, rep.Drift.Failures...)
	for _, st := range rep.Steps {
		for _, f := range st.Failures {
			line := fmt.Sprintf("%s at %.0f s: %s", st.Scenario, st.Start, f)
			if strings.Contains(f, "no client sent") {
				rep.Failures = append(rep.Failures, line)
			} else {
				rep.Warnings = append(rep.Warnings, line)
			}
		}
	}
}

// soakCSV writes the readings as they come: seconds, rss_bytes, fds,
// goroutines (-1: not measured), step.
type soakCSV struct {
	f   *os.File
	w   *bufio.Writer
	err error
}

func newSoakCSV(path string) (*soakCSV, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("soak csv: %w", err)
	}
	c := &soakCSV{f: f, w: bufio.NewWriter(f)}
	_, c.err = c.w.WriteString("seconds,rss_bytes,fds,goroutines,step\n")
	return c, nil
}

// write adds one line and flushes it (a soak cut short keeps its readings).
func (c *soakCSV) write(s SoakSample) {
	if c.err != nil {
		return
	}
	if _, c.err = fmt.Fprintf(c.w, "%.1f,%d,%d,%d,%s\n", s.Seconds, s.Res.RSSBytes, s.Res.FDs, s.Res.Goroutines, s.Step); c.err == nil {
		c.err = c.w.Flush()
	}
}

func (c *soakCSV) close() error {
	err := c.err
	if cerr := c.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("soak csv: %w", err)
	}
	return nil
}

// WriteSoakSummary writes the soak's outcome as text: the floors, the
// verdict, the failures and warnings.
func WriteSoakSummary(w io.Writer, rep *SoakReport) error {
	var b strings.Builder
	d := rep.Drift
	fmt.Fprintf(&b, "soak of %s: %d readings, %d hostile steps (%d complete passes)\n", rep.Target, len(rep.Samples), len(rep.Steps), rep.Cycles)
	fmt.Fprintf(&b, "floors %.0f–%.0f s: RSS %s, fds %d, goroutines %s; last quarter %.0f–%.0f s: RSS %s, fds %d, goroutines %s\n",
		d.RefStart, d.LastStart, mib(d.RefFloor.RSSBytes), d.RefFloor.FDs, goroutineCell(d.RefFloor.Goroutines),
		d.LastStart, d.End, mib(d.LastFloor.RSSBytes), d.LastFloor.FDs, goroutineCell(d.LastFloor.Goroutines))
	for _, f := range rep.Failures {
		fmt.Fprintf(&b, "FAIL: %s\n", f)
	}
	for _, f := range rep.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", f)
	}
	if rep.Passed() {
		b.WriteString("soak: PASS\n")
	} else {
		b.WriteString("soak: FAIL\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
