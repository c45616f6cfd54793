package bench

import (
	"fmt"
	"runtime"
	"sort"
	"time"
)

// Config is one harness run: which scenarios against which targets, at which
// sizes, for how many rounds. cmd/consolebench fills it from flags; the zero
// value of any field means its default (applied once, by Defaults).
type Config struct {
	Targets   []string // consoleproxy, websockify, tcp-relay (run in turn, alternating)
	Reference string   // the target every other is divided by (tcp-relay)
	Scenarios []string // hold, echo, stream-down, stream-up, churn, mixed
	Sessions  []int    // session counts; each load scenario runs at each
	// HostileSessions are the hostile scenarios' session counts; empty: each
	// runs at its own size (hostileSpec.size).
	HostileSessions []int
	Rounds          int           // rounds of the whole set; medians are taken over them
	Duration        time.Duration // the measured phase of each run
	ResultsDir      string        // results.jsonl, results.md, plots, proxy logs
	BenchmarksMD    string        // when set, also write this BENCHMARKS.md
	ReportFrom      string        // cmd only: render the reports of this results.jsonl instead of running
	Command         string        // the command line quoted in the report

	Loops       int           // client event loops (epoll goroutines)
	SourceAddrs int           // loopback source addresses 127.0.0.2… to spread connections over
	MaxInflight int           // connects and handshakes in flight per loop
	OpenTimeout time.Duration // bound on establishing all sessions of a run

	ConsoleproxyPath string   // binary started for the consoleproxy target
	ConsoleproxyArgs []string // extra flags for it (after the harness's own)
	WebsockifyPath   string
	HaproxyPath      string
	// Caps holds per-target session caps (websockify: 500, it silently fails past ~507).
	Caps map[string]int

	Params Params
}

// Params are the scenarios' knobs, as given on the command line.
type Params struct {
	EchoRate      float64       // echo: messages per second per session
	EchoMaxTotal  float64       // echo: cap on messages per second over all sessions (0: none)
	EchoSize      int           // echo, churn, mixed typing: message bytes (≥ 8)
	FrameSize     int           // stream-up: payload bytes per WebSocket frame
	StreamRate    int64         // stream-down/up: bytes/s per session; 0 is flat out
	ChurnMessages int           // churn: echoes per session before it closes
	TypingShare   float64       // mixed: share of sessions typing
	BurstShare    float64       // mixed: share of sessions receiving screen bursts
	TypingRate    float64       // mixed: keystrokes per second per typing session
	BurstBytes    int           // mixed/rfb: bytes per screen burst
	BurstInterval time.Duration // mixed/rfb: mean time between bursts per session

	// The hostile scenarios (hostile.go).
	HostileSettle time.Duration // bound on the wait for the proxy to give back fds, goroutines and RSS
	SlowHostRate  int64         // upload-slow-host: bytes/s each compute host reads
	StormFrames   int           // frame-storm: tiny frames per write
	ResetWaves    int           // reset-storm: waves of sessions at most (within --duration)

	// The TLS handshake scenarios (tls_scenario.go).
	HandshakeCount       int // full handshakes per run at most (within --duration)
	HandshakeConcurrency int // handshakes in flight at once
}

// Defaults returns c with every zero field set to its default.
func (c Config) Defaults() Config {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	if len(c.Targets) == 0 {
		c.Targets = []string{"consoleproxy", "tcp-relay"}
	}
	if c.Reference == "" {
		c.Reference = "tcp-relay"
	}
	if len(c.Scenarios) == 0 {
		c.Scenarios = AllScenarios()
	}
	if len(c.Sessions) == 0 {
		c.Sessions = []int{100}
	}
	def(&c.Rounds, 1)
	def(&c.Loops, runtime.NumCPU())
	def(&c.SourceAddrs, 8)
	def(&c.MaxInflight, 32)
	if c.Duration == 0 {
		c.Duration = 5 * time.Second
	}
	if c.OpenTimeout == 0 {
		c.OpenTimeout = 60 * time.Second
	}
	if c.ResultsDir == "" {
		c.ResultsDir = "bench-results"
	}
	if c.ConsoleproxyPath == "" {
		c.ConsoleproxyPath = "bin/consoleproxy"
	}
	if c.WebsockifyPath == "" {
		c.WebsockifyPath = "/usr/bin/websockify"
	}
	if c.HaproxyPath == "" {
		c.HaproxyPath = "/usr/sbin/haproxy"
	}
	if c.Caps == nil {
		c.Caps = map[string]int{"websockify": 500}
	}
	c.Params = c.Params.defaults()
	return c
}

func (p Params) defaults() Params {
	if p.EchoRate == 0 {
		p.EchoRate = 10
	}
	if p.EchoSize < 8 {
		p.EchoSize = 64
	}
	if p.FrameSize == 0 {
		p.FrameSize = 4096
	}
	if p.ChurnMessages == 0 {
		p.ChurnMessages = 1
	}
	if p.TypingShare == 0 && p.BurstShare == 0 {
		p.TypingShare, p.BurstShare = 0.2, 0.1
	}
	if p.TypingRate == 0 {
		p.TypingRate = 5
	}
	if p.BurstBytes == 0 {
		p.BurstBytes = 128 << 10
	}
	if p.BurstInterval == 0 {
		p.BurstInterval = time.Second
	}
	if p.HostileSettle == 0 {
		p.HostileSettle = 15 * time.Second
	}
	if p.SlowHostRate == 0 {
		p.SlowHostRate = 2 << 20
	}
	if p.StormFrames == 0 {
		p.StormFrames = 4096
	}
	if p.ResetWaves == 0 {
		p.ResetWaves = 5
	}
	if p.HandshakeCount == 0 {
		p.HandshakeCount = 2000
	}
	if p.HandshakeConcurrency == 0 {
		p.HandshakeConcurrency = 16
	}
	return p
}

// Validate reports the first setting that cannot run.
func (c Config) Validate() error {
	for _, s := range c.Scenarios {
		if scenarioByName(s) == nil {
			return fmt.Errorf("unknown scenario %q (have %v, %v and %v)", s, AllScenarios(), HostileScenarios(), TLSScenarios())
		}
	}
	for _, t := range c.Targets {
		if !knownTarget(t) {
			return fmt.Errorf("unknown target %q (have %v)", t, TargetNames())
		}
	}
	for _, n := range append(append([]int(nil), c.Sessions...), c.HostileSessions...) {
		if n < 1 {
			return fmt.Errorf("session count %d: must be at least 1", n)
		}
	}
	if c.Loops < 1 || c.SourceAddrs < 1 || c.SourceAddrs > 250 {
		return fmt.Errorf("loops %d, source addresses %d: out of range", c.Loops, c.SourceAddrs)
	}
	if p := c.Params; p.HandshakeCount < 1 || p.HandshakeCount > maxHandshakeCount || p.HandshakeConcurrency < 1 {
		return fmt.Errorf("handshakes %d, in flight %d: out of range (1..%d, ≥ 1)", p.HandshakeCount, p.HandshakeConcurrency, maxHandshakeCount)
	}
	if c.Params.FrameSize < 1 || c.Params.FrameSize > 1<<20-16 {
		return fmt.Errorf("frame size %d: must be in 1..1MiB", c.Params.FrameSize)
	}
	return nil
}

// sizesOf is the session counts scenario sc runs at: sizes() for a load
// scenario; HostileSessions, or else the scenario's own size, for a hostile
// one.
func (c Config) sizesOf(sc *scenario) []int {
	if sc.tls != nil && sc.tls.handshakes {
		return []int{c.Params.HandshakeConcurrency}
	}
	if sc.hostile == nil {
		return c.sizes()
	}
	if len(c.HostileSessions) > 0 {
		return c.HostileSessions
	}
	return []int{sc.hostile.size}
}

// sizes is the session counts to run: those asked for, plus each capped
// target's cap when a larger count was asked for (so that the capped target
// is compared with the others at its cap), ascending.
func (c Config) sizes() []int {
	set := map[int]bool{}
	for _, n := range c.Sessions {
		set[n] = true
		for _, t := range c.Targets {
			if limit := c.Caps[t]; limit > 0 && n > limit {
				set[limit] = true
			}
		}
	}
	var out []int
	for n := range set {
		out = append(out, n)
	}
	sort.Ints(out)
	return out
}

// capNotes says which targets skip which sizes, and why.
func (c Config) capNotes() []string {
	var out []string
	for _, t := range c.Targets {
		limit := c.Caps[t]
		var skipped []int
		for _, n := range c.sizes() {
			if limit > 0 && n > limit {
				skipped = append(skipped, n)
			}
		}
		if len(skipped) > 0 {
			out = append(out, fmt.Sprintf("%s: capped at %d sessions, skips %v%s", t, limit, skipped, capReasons[t]))
		}
	}
	return out
}

var capReasons = map[string]string{
	"websockify": " (past about 507 live sessions per listener it silently drops connections: select() cannot watch fds ≥ 1024)",
}
