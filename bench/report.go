package bench

import (
	"cmp"
	"slices"
)

// DefaultReference is the target the others are compared against when the
// caller names none: a plain TCP relay, the floor any proxy is measured from.
const DefaultReference = "tcp-relay"

// Row is one line of the report's table: one (scenario, sessions, target)
// summarised over its rounds.
type Row struct {
	Scenario  string
	Sessions  int
	Target    string
	Reference string // the target Ratios compare against

	Rounds int // how many runs were summarised
	Opened int // sessions opened, summed over rounds
	Failed int // sessions that failed, summed over rounds

	// Values holds, for each metric this row measures (non-zero in some
	// round, or always shown such as CPU time), its median over rounds.
	Values map[Metric]float64

	// Ratios holds, for the scenario's headline metrics (ratioMetrics),
	// Values[m] divided by the reference row's Values[m] at the same
	// scenario and sessions. A metric is absent when there is no reference
	// row, either side lacks it or the reference's value is 0. The
	// reference's own row has no ratios.
	Ratios map[Metric]float64

	// Latency is the latency percentiles, and CDF the distribution, of the
	// median round by p99 (nil when the scenario measures no latency).
	Latency *Percentiles
	CDF     [][2]float64
}

// IsReference reports whether the row is the reference target's.
func (r *Row) IsReference() bool { return r.Target == r.Reference }

// rowKey identifies a row.
type rowKey struct {
	scenario string
	sessions int
	target   string
}

// Summarize turns runs into table rows: one per (scenario, sessions,
// target), each metric the median over its rounds, with ratios to the
// reference target (DefaultReference when reference is empty). Rows are
// sorted by scenario (hold, echo, stream-down, stream-up, churn, mixed, then
// any other alphabetically), sessions ascending, then target with the
// reference first and the others alphabetically. rs is not modified.
func Summarize(rs []Result, reference string) []Row {
	if reference == "" {
		reference = DefaultReference
	}
	groups := make(map[rowKey][]*Result)
	for i := range rs {
		r := &rs[i]
		k := rowKey{r.Scenario, r.Sessions, r.Target}
		groups[k] = append(groups[k], r)
	}
	rows := make([]Row, 0, len(groups))
	for k, runs := range groups {
		rows = append(rows, summarizeRuns(k, runs, reference))
	}
	slices.SortFunc(rows, compareRows)
	fillRatios(rows)
	return rows
}

// summarizeRuns builds the row of one group of runs, without ratios.
func summarizeRuns(k rowKey, runs []*Result, reference string) Row {
	row := Row{
		Scenario: k.scenario, Sessions: k.sessions, Target: k.target, Reference: reference,
		Rounds: len(runs), Values: make(map[Metric]float64),
	}
	for _, r := range runs {
		row.Opened += r.Opened
		row.Failed += r.Failed
	}
	vs := make([]float64, len(runs))
	for m := range numMetrics {
		measured := m.spec().always
		for i, r := range runs {
			vs[i] = m.valueOf(r)
			measured = measured || vs[i] != 0
		}
		if measured {
			row.Values[m] = roundMedian(vs)
		}
	}
	if mid := medianRunByP99(runs); mid != nil {
		row.Latency, row.CDF = mid.Latency, mid.CDF
	}
	return row
}

// roundMedian is the median of vs: the middle value for an odd count, the
// mean of the two middle values for an even one, 0 for none. vs is sorted
// in place.
func roundMedian(vs []float64) float64 {
	n := len(vs)
	if n == 0 {
		return 0
	}
	slices.Sort(vs)
	if n%2 == 1 {
		return vs[n/2]
	}
	return (vs[n/2-1] + vs[n/2]) / 2
}

// medianRunByP99 is the run whose latency p99 is the (lower) median over
// runs, nil when no run measured latency.
func medianRunByP99(runs []*Result) *Result {
	withLatency := make([]*Result, 0, len(runs))
	for _, r := range runs {
		if r.Latency != nil {
			withLatency = append(withLatency, r)
		}
	}
	if len(withLatency) == 0 {
		return nil
	}
	slices.SortStableFunc(withLatency, func(a, b *Result) int {
		return cmp.Compare(a.Latency.P99, b.Latency.P99)
	})
	return withLatency[(len(withLatency)-1)/2]
}

// groupRows splits rows into runs of consecutive rows with the same key,
// keeping their order. The groups share rows' storage.
func groupRows(rows []Row, key func(r *Row) string) [][]Row {
	var groups [][]Row
	for start := 0; start < len(rows); {
		end := start + 1
		for end < len(rows) && key(&rows[end]) == key(&rows[start]) {
			end++
		}
		groups = append(groups, rows[start:end])
		start = end
	}
	return groups
}

// compareRows is the table's order (see Summarize).
func compareRows(a, b Row) int {
	return cmp.Or(
		cmp.Compare(scenarioRank(a.Scenario), scenarioRank(b.Scenario)),
		cmp.Compare(a.Scenario, b.Scenario),
		cmp.Compare(a.Sessions, b.Sessions),
		compareBool(!a.IsReference(), !b.IsReference()),
		cmp.Compare(a.Target, b.Target),
	)
}

// compareBool orders false before true.
func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

// fillRatios sets each non-reference row's Ratios against the reference row
// of its scenario and sessions.
func fillRatios(rows []Row) {
	refs := make(map[rowKey]*Row)
	for i := range rows {
		if rows[i].IsReference() {
			refs[rowKey{rows[i].Scenario, rows[i].Sessions, ""}] = &rows[i]
		}
	}
	for i := range rows {
		row := &rows[i]
		ref := refs[rowKey{row.Scenario, row.Sessions, ""}]
		if row.IsReference() || ref == nil {
			continue
		}
		row.Ratios = make(map[Metric]float64)
		for _, m := range ratioMetrics(row.Scenario) {
			if r, ok := ratio(row.Values, ref.Values, m); ok {
				row.Ratios[m] = r
			}
		}
	}
}

// ratio is v[m] / ref[m], false when either lacks m or ref[m] is 0.
func ratio(v, ref map[Metric]float64, m Metric) (float64, bool) {
	a, okA := v[m]
	b, okB := ref[m]
	if !okA || !okB || b == 0 {
		return 0, false
	}
	return a / b, true
}
