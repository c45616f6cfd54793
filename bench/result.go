package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Result is one measured run: one scenario against one target in one round.
// It is what the engine (scenarios, clients, targets) hands to the report
// (JSON Lines, Markdown, plots); one JSON object per line in results.jsonl.
// Fields that a scenario does not measure stay zero and are omitted.
type Result struct {
	Scenario string            `json:"scenario"`         // hold, echo, stream-down, stream-up, churn, mixed
	Target   string            `json:"target"`           // consoleproxy, websockify, tcp-relay, …
	Round    int               `json:"round"`            // 1-based; targets alternate within a round
	Sessions int               `json:"sessions"`         // sessions asked for
	Params   map[string]string `json:"params,omitempty"` // scenario parameters (rate, frame size, …) as given

	// Counts: a well-formed run has Opened == Closed and, where data flows
	// both ways through an echo, BytesSent == BytesReceived.
	Opened        int   `json:"opened"`         // sessions that completed their handshake
	Failed        int   `json:"failed"`         // sessions that could not be opened or broke
	Closed        int   `json:"closed"`         // sessions closed by the harness at the end
	BytesSent     int64 `json:"bytes_sent"`     // payload bytes the clients or backends sent
	BytesReceived int64 `json:"bytes_received"` // payload bytes that arrived at the other end
	Messages      int64 `json:"messages,omitempty"`

	Seconds float64 `json:"seconds"` // the measured phase's wall time

	// Throughput (stream-down, stream-up, mixed).
	MBps           float64 `json:"mbps,omitempty"`             // MB/s (10^6 bytes) in total
	MBpsPerSession float64 `json:"mbps_per_session,omitempty"` // MBps / Sessions

	// Latency (echo round trips; for hold and churn each session's time to
	// establish: from its connect until its first echo is back through the
	// console, Session.Probe), in milliseconds.
	Latency *Percentiles `json:"latency_ms,omitempty"`

	// The proxy under test (its processes, children included), and the
	// harness's own CPU beside it: the client must not be the bottleneck.
	ProxyCPUSeconds   float64 `json:"proxy_cpu_seconds"`
	ProxyCPUSecPerGB  float64 `json:"proxy_cpu_s_per_gb,omitempty"`
	ClientCPUSeconds  float64 `json:"client_cpu_seconds"`
	ProxyRSSBytes     int64   `json:"proxy_rss_bytes,omitempty"`
	ProxyPSSBytes     int64   `json:"proxy_pss_bytes,omitempty"`
	RSSPerSession     float64 `json:"rss_per_session_bytes,omitempty"` // (RSS held - RSS at rest) / Opened
	PSSPerSession     float64 `json:"pss_per_session_bytes,omitempty"`
	ProxyFDs          int     `json:"proxy_fds,omitempty"`
	SessionsPerSecond float64 `json:"sessions_per_second,omitempty"` // churn: opened, used and closed per second

	// CDF is the latency distribution for plots: (value_ms, fraction ≤) pairs,
	// at most a few hundred points.
	CDF [][2]float64 `json:"cdf,omitempty"`

	Errors []string `json:"errors,omitempty"` // distinct error kinds seen, each with its count

	// Hostile is set on a hostile scenario's run (hostile.go).
	Hostile *HostileResult `json:"hostile,omitempty"`
}

// HostileResult is what a hostile scenario measured: the proxy process
// before the attack, at its peak and after (the clients gone, the settle
// bound waited), and whether it passed.
type HostileResult struct {
	Before Resources `json:"before"`
	Peak   Resources `json:"peak"`
	After  Resources `json:"after"`
	// SettleSeconds is how long after the last client left the proxy took
	// to come back within the tolerance (or the bound, when it did not).
	SettleSeconds float64 `json:"settle_seconds"`
	// Cut counts sessions the proxy ended while their client still wanted
	// them (where that is wrong: uploads, small frames).
	Cut int `json:"cut,omitempty"`
	// Corrupt counts compute-host connections that received a byte no
	// client sent; CorruptDetails describes the first few.
	Corrupt        int      `json:"corrupt,omitempty"`
	CorruptDetails []string `json:"corrupt_details,omitempty"`
	// HostsOpen is the compute-host connections still open after settling.
	HostsOpen int `json:"hosts_open,omitempty"`
	// Failures says why the scenario failed; empty when it passed.
	Failures []string `json:"failures,omitempty"`
}

// Passed reports whether the hostile scenario passed.
func (h *HostileResult) Passed() bool { return len(h.Failures) == 0 }

// Percentiles of a latency distribution, in milliseconds.
type Percentiles struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
}

// Check reports the counts of a run that do not add up, all of them joined
// in one error (nil when the run is consistent):
//   - a negative count, byte total, duration or resource figure;
//   - Opened != Closed: every session the harness opened it must also close;
//   - BytesSent != BytesReceived: in every scenario the payload sent by one
//     end must arrive at the other (echo: clients' bytes come back; stream-down
//     and stream-up: the backends' or the clients' bytes arrive at the far end;
//     mixed: both). Hold and churn usually move no data, and 0 == 0.
func (r *Result) Check() error {
	var errs []error
	for _, c := range r.nonNegatives() {
		if c.v < 0 {
			errs = append(errs, fmt.Errorf("%s: negative %s %v", r.checkLabel(), c.name, c.v))
		}
	}
	if r.Opened != r.Closed {
		errs = append(errs, fmt.Errorf("%s: opened %d sessions but closed %d", r.checkLabel(), r.Opened, r.Closed))
	}
	if r.BytesSent != r.BytesReceived {
		errs = append(errs, fmt.Errorf("%s: sent %d bytes but %d arrived", r.checkLabel(), r.BytesSent, r.BytesReceived))
	}
	return errors.Join(errs...)
}

// namedCount is one figure Check requires to be non-negative.
type namedCount struct {
	name string
	v    float64
}

// nonNegatives lists the figures that must not be negative.
func (r *Result) nonNegatives() []namedCount {
	return []namedCount{
		{"sessions", float64(r.Sessions)}, {"opened", float64(r.Opened)},
		{"failed", float64(r.Failed)}, {"closed", float64(r.Closed)},
		{"bytes sent", float64(r.BytesSent)}, {"bytes received", float64(r.BytesReceived)},
		{"messages", float64(r.Messages)}, {"seconds", r.Seconds},
		{"proxy cpu seconds", r.ProxyCPUSeconds}, {"client cpu seconds", r.ClientCPUSeconds},
		{"proxy fds", float64(r.ProxyFDs)},
	}
}

// checkLabel names the run in error messages: scenario/target/sessions/round.
func (r *Result) checkLabel() string {
	return fmt.Sprintf("%s/%s/%d sessions/round %d", r.Scenario, r.Target, r.Sessions, r.Round)
}

// WriteJSONL writes rs as JSON Lines, one Result per line.
func WriteJSONL(w io.Writer, rs []Result) error {
	enc := json.NewEncoder(w)
	for i := range rs {
		if err := enc.Encode(&rs[i]); err != nil {
			return fmt.Errorf("write result %d: %w", i+1, err)
		}
	}
	return nil
}

// maxJSONLLine bounds one line of results.jsonl (a Result with its CDF is a
// few KiB).
const maxJSONLLine = 16 << 20

// ReadJSONL reads what WriteJSONL wrote. Blank lines are skipped; a line that
// is not a Result is an error naming its (1-based) line number.
func ReadJSONL(r io.Reader) ([]Result, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxJSONLLine)
	var rs []Result
	line := 0
	for sc.Scan() {
		line++
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var res Result
		if err := json.Unmarshal(sc.Bytes(), &res); err != nil {
			return nil, fmt.Errorf("results line %d: %w", line, err)
		}
		rs = append(rs, res)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("results line %d: %w", line+1, err)
	}
	return rs, nil
}
