package bench

import (
	"math"
	"testing"
)

// sampleRun is one test run; its throughput, p99 and memory scale with f
// so that medians and ratios are easy to predict.
func sampleRun(scenario, target string, sessions, round int, f float64) Result {
	r := Result{
		Scenario: scenario, Target: target, Round: round, Sessions: sessions,
		Opened: sessions, Closed: sessions, Seconds: 10,
		ProxyCPUSeconds: 2 * f, ClientCPUSeconds: 1,
	}
	switch scenario {
	case "hold":
		r.RSSPerSession, r.PSSPerSession, r.ProxyFDs = 8192*f, 4096*f, 2*sessions+10
	case "echo", "churn":
		r.Latency = &Percentiles{Count: 1000, P50: f, P90: 2 * f, P99: 10 * f, P999: 20 * f, Max: 50 * f}
		r.CDF = [][2]float64{{f, 0.5}, {10 * f, 0.99}, {50 * f, 1}}
		if scenario == "churn" {
			r.SessionsPerSecond = 1000 / f
		}
	default: // streams and mixed
		r.MBps, r.MBpsPerSession, r.ProxyCPUSecPerGB = 100*f, 100*f/float64(sessions), 3/f
	}
	return r
}

// sampleResults are three rounds over three targets; consoleproxy runs at
// 0.85× the reference's figures, websockify at 2× and it drops sessions.
func sampleResults() []Result {
	var rs []Result
	for round := 1; round <= 3; round++ {
		for _, sc := range []string{"mixed", "churn", "stream-down", "echo", "hold"} {
			for _, sessions := range []int{1000, 10} {
				rs = append(rs,
					sampleRun(sc, "websockify", sessions, round, 2),
					sampleRun(sc, "consoleproxy", sessions, round, 0.85),
					sampleRun(sc, "tcp-relay", sessions, round, 1))
				rs[len(rs)-3].Failed = 5
			}
		}
	}
	return rs
}

func TestRoundMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{7}, 7},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{5, 5, 1, 100, 6}, 5},
		{[]float64{10, 0}, 5},
	}
	for _, tt := range tests {
		if got := roundMedian(append([]float64(nil), tt.in...)); got != tt.want {
			t.Errorf("roundMedian(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestSummarizeMedianOverRounds(t *testing.T) {
	tests := []struct {
		name    string
		mbps    []float64
		want    float64
		wantP99 float64 // the median round's p99, whose CDF is kept
	}{
		{"odd", []float64{300, 100, 200}, 200, 2},
		{"even", []float64{100, 400, 200, 300}, 250, 2},
		{"one", []float64{42}, 42, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rs []Result
			for i, v := range tt.mbps {
				r := sampleRun("mixed", "consoleproxy", 10, i+1, 1)
				r.MBps, r.Failed = v, 1
				r.Latency = &Percentiles{P99: float64(i + 1)}
				rs = append(rs, r)
			}
			rows := Summarize(rs, "")
			if len(rows) != 1 {
				t.Fatalf("%d rows, want 1", len(rows))
			}
			row := rows[0]
			if row.Values[MetricMBps] != tt.want || row.Rounds != len(tt.mbps) {
				t.Errorf("MB/s %v over %d rounds, want %v over %d", row.Values[MetricMBps], row.Rounds, tt.want, len(tt.mbps))
			}
			if row.Opened != 10*len(tt.mbps) || row.Failed != len(tt.mbps) {
				t.Errorf("opened/failed %d/%d, want sums over rounds", row.Opened, row.Failed)
			}
			if row.Latency.P99 != tt.wantP99 {
				t.Errorf("median round p99 %v, want %v", row.Latency.P99, tt.wantP99)
			}
		})
	}
}

func TestSummarizeOrderAndColumns(t *testing.T) {
	rows := Summarize(sampleResults(), "")
	want := []string{"hold", "echo", "stream-down", "churn", "mixed"}
	if len(rows) != len(want)*2*3 {
		t.Fatalf("%d rows, want %d", len(rows), len(want)*2*3)
	}
	for i, row := range rows {
		sc, sessions, target := want[i/6], []int{10, 1000}[i/3%2], []string{"tcp-relay", "consoleproxy", "websockify"}[i%3]
		if row.Scenario != sc || row.Sessions != sessions || row.Target != target {
			t.Errorf("row %d is %s/%d/%s, want %s/%d/%s", i, row.Scenario, row.Sessions, row.Target, sc, sessions, target)
		}
	}
	hold := rows[0].Values
	if _, ok := hold[MetricMBps]; ok {
		t.Error("hold has an MB/s value; it measures none")
	}
	if hold[MetricRSSPerSession] != 8 || hold[MetricPSSPerSession] != 4 {
		t.Errorf("hold RSS/PSS %v/%v KiB, want 8/4", hold[MetricRSSPerSession], hold[MetricPSSPerSession])
	}
	if _, ok := hold[MetricClientCPU]; !ok {
		t.Error("client CPU missing; it is always shown")
	}
}

func TestSummarizeRatios(t *testing.T) {
	rows := Summarize(sampleResults(), "")
	tests := []struct {
		scenario, target string
		metric           Metric
		want             float64
	}{
		{"stream-down", "consoleproxy", MetricMBps, 0.85},
		{"stream-down", "consoleproxy", MetricCPUPerGB, 1 / 0.85},
		{"echo", "websockify", MetricP99, 2},
		{"echo", "consoleproxy", MetricP50, 0.85},
		{"hold", "websockify", MetricRSSPerSession, 2},
		{"churn", "websockify", MetricSessionsPerSec, 0.5},
		{"mixed", "consoleproxy", MetricP99, math.NaN()}, // mixed measures no latency here
	}
	for _, tt := range tests {
		row := findRow(t, rows, tt.scenario, 1000, tt.target)
		got, ok := row.Ratios[tt.metric]
		if math.IsNaN(tt.want) {
			if ok {
				t.Errorf("%s/%s %s ratio %v, want none", tt.scenario, tt.target, tt.metric.Header(), got)
			}
			continue
		}
		if !ok || math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("%s/%s %s ratio %v (%v), want %v", tt.scenario, tt.target, tt.metric.Header(), got, ok, tt.want)
		}
	}
	if ref := findRow(t, rows, "echo", 10, "tcp-relay"); ref.Ratios != nil || !ref.IsReference() {
		t.Errorf("reference row has ratios %v", ref.Ratios)
	}
}

func TestSummarizeWithoutReference(t *testing.T) {
	rs := []Result{sampleRun("echo", "consoleproxy", 10, 1, 1), sampleRun("echo", "tcp-relay", 20, 1, 1)}
	rows := Summarize(rs, "")
	if row := findRow(t, rows, "echo", 10, "consoleproxy"); len(row.Ratios) != 0 {
		t.Errorf("ratios %v without a reference row at 10 sessions", row.Ratios)
	}
	rows = Summarize(rs, "consoleproxy")
	if rows[0].Target != "consoleproxy" || !rows[0].IsReference() {
		t.Errorf("reference consoleproxy not first: %+v", rows[0])
	}
}

func TestRatioZeroReference(t *testing.T) {
	if _, ok := ratio(map[Metric]float64{MetricMBps: 5}, map[Metric]float64{MetricMBps: 0}, MetricMBps); ok {
		t.Error("ratio to a zero reference reported")
	}
	if r, ok := ratio(map[Metric]float64{MetricP99: 13}, map[Metric]float64{MetricP99: 10}, MetricP99); !ok || r != 1.3 {
		t.Errorf("ratio 13/10 = %v, %v", r, ok)
	}
}

func findRow(t *testing.T, rows []Row, scenario string, sessions int, target string) *Row {
	t.Helper()
	for i := range rows {
		if r := &rows[i]; r.Scenario == scenario && r.Sessions == sessions && r.Target == target {
			return r
		}
	}
	t.Fatalf("no row %s/%d/%s", scenario, sessions, target)
	return nil
}
