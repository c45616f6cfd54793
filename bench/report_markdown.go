package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// WriteMarkdown writes rows, in the order Summarize returns them, as
// Markdown: one "### scenario" section per scenario, each a table with the
// columns that scenario measures. After each headline metric comes its ratio
// to the reference ("×0.85"; "ref" on the reference's own row, "—" when the
// reference has no row at that scenario and sessions). Headers carry ↑ when
// higher is better and ↓ when lower is.
func WriteMarkdown(w io.Writer, rows []Row) error {
	var b strings.Builder
	for _, g := range groupRows(rows, func(r *Row) string { return r.Scenario }) {
		writeScenarioTable(&b, g)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write markdown table: %w", err)
	}
	return nil
}

// mdColumn is one column of a Markdown table.
type mdColumn struct {
	header string
	right  bool // right-aligned (numbers)
	cell   func(r *Row) string
}

// writeScenarioTable writes the section of one scenario's rows.
func writeScenarioTable(b *strings.Builder, rows []Row) {
	cols := scenarioColumns(rows)
	fmt.Fprintf(b, "### %s\n\n|", mdEscape(rows[0].Scenario))
	for _, c := range cols {
		fmt.Fprintf(b, " %s |", c.header)
	}
	b.WriteString("\n|")
	for _, c := range cols {
		if c.right {
			b.WriteString(" ---: |")
		} else {
			b.WriteString(" --- |")
		}
	}
	b.WriteString("\n")
	for i := range rows {
		b.WriteString("|")
		for _, c := range cols {
			fmt.Fprintf(b, " %s |", c.cell(&rows[i]))
		}
		b.WriteString("\n")
	}
	b.WriteString("\n")
}

// scenarioColumns are the columns of one scenario's table: who, counts,
// then every metric some row measures, each headline metric followed by its
// ratio to the reference.
func scenarioColumns(rows []Row) []mdColumn {
	cols := []mdColumn{
		{"sessions", true, func(r *Row) string { return strconv.Itoa(r.Sessions) }},
		{"target", false, func(r *Row) string { return mdEscape(r.Target) }},
		{"rounds", true, func(r *Row) string { return strconv.Itoa(r.Rounds) }},
		{"opened/failed", true, openedFailedCell},
	}
	headline := ratioMetrics(rows[0].Scenario)
	for m := range numMetrics {
		if !anyRowHas(rows, m) {
			continue
		}
		cols = append(cols, mdColumn{metricHeader(m), true, valueCell(m)})
		if slices.Contains(headline, m) {
			h := fmt.Sprintf("%s vs %s", m.spec().name, mdEscape(rows[0].Reference))
			cols = append(cols, mdColumn{h, true, ratioCell(m)})
		}
	}
	return cols
}

// anyRowHas reports whether some row measures m.
func anyRowHas(rows []Row, m Metric) bool {
	for i := range rows {
		if _, ok := rows[i].Values[m]; ok {
			return true
		}
	}
	return false
}

// metricHeader is m's header with its better-direction arrow.
func metricHeader(m Metric) string {
	switch m.Better() {
	case Higher:
		return m.Header() + " ↑"
	case Lower:
		return m.Header() + " ↓"
	}
	return m.Header()
}

// openedFailedCell shows the sessions opened and failed, the failures in
// bold when there are any.
func openedFailedCell(r *Row) string {
	if r.Failed > 0 {
		return fmt.Sprintf("%d/**%d**", r.Opened, r.Failed)
	}
	return fmt.Sprintf("%d/0", r.Opened)
}

// valueCell renders a row's median of m, "—" when the row lacks it.
func valueCell(m Metric) func(r *Row) string {
	return func(r *Row) string {
		v, ok := r.Values[m]
		if !ok {
			return "—"
		}
		return formatValue(v)
	}
}

// ratioCell renders a row's ratio of m to the reference.
func ratioCell(m Metric) func(r *Row) string {
	return func(r *Row) string {
		if r.IsReference() {
			return "ref"
		}
		v, ok := r.Ratios[m]
		if !ok {
			return "—"
		}
		return formatRatio(v)
	}
}

// formatValue prints a measured value with about three significant digits,
// never in exponent form.
func formatValue(v float64) string {
	a := math.Abs(v)
	switch {
	case v == 0:
		return "0"
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

// formatRatio prints a ratio to the reference as "×0.85", "×1.3", "×12":
// two significant digits below 10, whole numbers above.
func formatRatio(v float64) string {
	if v >= 10 {
		return "×" + strconv.FormatFloat(v, 'f', 0, 64)
	}
	if v < 0.01 {
		return "×" + strconv.FormatFloat(v, 'f', 3, 64)
	}
	return "×" + strconv.FormatFloat(v, 'g', 2, 64)
}

// mdEscape keeps a name from breaking a table cell.
func mdEscape(s string) string {
	return strings.ReplaceAll(s, "|", `\|`)
}
