package bench

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// The size of every plot, and the narrowest latency a log axis shows.
const (
	plotWidth    = 8 * vg.Inch
	plotHeight   = 5 * vg.Inch
	plotBarWidth = vg.Length(16) // points
	plotMinMs    = 0.001         // 1 µs, the histogram's resolution
)

// plotSpec is one figure of the report, saved as name.png and name.svg.
type plotSpec struct {
	name  string // file name without extension
	title string // also the image's alt text in BENCHMARKS.md
	build func() (*plot.Plot, error)
}

// writePlots renders the report's figures into dir (which must exist), each
// as PNG and SVG, and returns them in the order they should be shown.
func writePlots(dir string, rows []Row) ([]plotSpec, error) {
	specs := planPlots(rows)
	for _, s := range specs {
		p, err := s.build()
		if err != nil {
			return nil, fmt.Errorf("plot %s: %w", s.name, err)
		}
		p.Title.Text = s.title
		for _, ext := range [...]string{".png", ".svg"} {
			if err := p.Save(plotWidth, plotHeight, filepath.Join(dir, s.name+ext)); err != nil {
				return nil, fmt.Errorf("save plot %s%s: %w", s.name, ext, err)
			}
		}
	}
	return specs, nil
}

// planPlots lists the figures rows call for: a latency CDF per scenario and
// sessions with latency, throughput bars per streaming scenario, and memory
// bars per held session count.
func planPlots(rows []Row) []plotSpec {
	colors := targetColors(rows)
	var specs []plotSpec
	for _, g := range groupRows(rows, func(r *Row) string { return r.Scenario + "\x00" + strconv.Itoa(r.Sessions) }) {
		if s, ok := latencyPlot(g, colors); ok {
			specs = append(specs, s)
		}
		if g[0].Scenario == "hold" && anyRowHas(g, MetricRSSPerSession) {
			specs = append(specs, memoryPlot(g))
		}
	}
	for _, g := range groupRows(rows, func(r *Row) string { return r.Scenario }) {
		switch g[0].Scenario {
		case "stream-down", "stream-up", "mixed":
			if anyRowHas(g, MetricMBps) {
				specs = append(specs, throughputPlot(g, colors))
			}
		}
	}
	return specs
}

// targetColors gives each target one colour for every figure.
func targetColors(rows []Row) map[string]color.Color {
	colors := make(map[string]color.Color)
	for i := range rows {
		if _, ok := colors[rows[i].Target]; !ok {
			colors[rows[i].Target] = plotutil.Color(len(colors))
		}
	}
	return colors
}

// latencyPlot is the CDF of one scenario and sessions, a line per target on
// a log latency axis; false when no row has latency.
func latencyPlot(g []Row, colors map[string]color.Color) (plotSpec, bool) {
	var lines []*plotter.Line
	var names []string
	for i := range g {
		pts := rowCDF(&g[i])
		if len(pts) == 0 {
			continue
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			continue // NaN or Inf in the data: leave the line out
		}
		l.Color, l.Width = colors[g[i].Target], vg.Points(1.5)
		lines, names = append(lines, l), append(names, g[i].Target)
	}
	if len(lines) == 0 {
		return plotSpec{}, false
	}
	scenario, sessions := g[0].Scenario, g[0].Sessions
	return plotSpec{
		name:  fmt.Sprintf("latency-%s-%d", fileSafe(scenario), sessions),
		title: fmt.Sprintf("%s, %d sessions: latency CDF (median round by p99)", scenario, sessions),
		build: func() (*plot.Plot, error) {
			p := plot.New()
			p.X.Label.Text, p.Y.Label.Text = "latency (ms, log scale)", "fraction of samples ≤ latency"
			p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
			for i, l := range lines {
				p.Add(l)
				p.Legend.Add(names[i], l)
			}
			p.Y.Min, p.Y.Max = 0, 1
			if p.X.Max <= p.X.Min {
				p.X.Max = p.X.Min * 10
			}
			p.Add(plotter.NewGrid())
			return p, nil
		},
	}, true
}

// rowCDF is a row's latency distribution for the plot: its CDF, or else the
// steps its percentiles give; latencies below plotMinMs are raised to it for
// the log axis.
func rowCDF(r *Row) plotter.XYs {
	cdf := r.CDF
	if len(cdf) == 0 && r.Latency != nil && r.Latency.Count > 0 {
		l := r.Latency
		cdf = [][2]float64{{l.P50, 0.5}, {l.P90, 0.9}, {l.P99, 0.99}, {l.P999, 0.999}, {l.Max, 1}}
	}
	pts := make(plotter.XYs, len(cdf))
	for i, c := range cdf {
		pts[i].X, pts[i].Y = max(c[0], plotMinMs), c[1]
	}
	return pts
}

// throughputPlot is one streaming scenario's MB/s: a group of bars per
// session count, a bar per target.
func throughputPlot(g []Row, colors map[string]color.Color) plotSpec {
	scenario := g[0].Scenario
	return plotSpec{
		name:  "throughput-" + fileSafe(scenario),
		title: scenario + ": throughput (median over rounds)",
		build: func() (*plot.Plot, error) {
			bySessions := groupRows(g, func(r *Row) string { return strconv.Itoa(r.Sessions) })
			labels := make([]string, len(bySessions))
			for i, s := range bySessions {
				labels[i] = strconv.Itoa(s[0].Sessions) + " sessions"
			}
			targets := distinctTargets(g)
			p := newBarPlot("MB/s (10⁶ bytes per second)", labels)
			for i, t := range targets {
				vals := make(plotter.Values, len(bySessions))
				for j, s := range bySessions {
					vals[j] = targetValue(s, t, MetricMBps)
				}
				if err := addBars(p, t, vals, colors[t], i, len(targets)); err != nil {
					return nil, err
				}
			}
			finishBarPlot(p, len(labels))
			return p, nil
		},
	}
}

// memoryPlot is one hold session count's proxy memory per idle session: a
// group per target, RSS and PSS side by side.
func memoryPlot(g []Row) plotSpec {
	sessions := g[0].Sessions
	return plotSpec{
		name:  fmt.Sprintf("memory-hold-%d", sessions),
		title: fmt.Sprintf("hold, %d sessions: proxy memory per idle session (median over rounds)", sessions),
		build: func() (*plot.Plot, error) {
			targets := distinctTargets(g)
			p := newBarPlot("KiB per session", targets)
			for i, m := range [...]Metric{MetricRSSPerSession, MetricPSSPerSession} {
				vals := make(plotter.Values, len(targets))
				for j, t := range targets {
					vals[j] = targetValue(g, t, m)
				}
				if err := addBars(p, m.spec().name, vals, plotutil.Color(i), i, 2); err != nil {
					return nil, err
				}
			}
			finishBarPlot(p, len(targets))
			return p, nil
		},
	}
}

// newBarPlot is an empty bar plot with one nominal group per label.
func newBarPlot(yLabel string, labels []string) *plot.Plot {
	p := plot.New()
	p.Y.Label.Text, p.Y.Min = yLabel, 0
	p.NominalX(labels...)
	p.Legend.Top = true
	grid := plotter.NewGrid()
	grid.Vertical.Color = nil // groups are nominal
	p.Add(grid)
	return p
}

// finishBarPlot frames n groups of bars: half a group of margin either
// side, and headroom above the tallest bar for the legend.
func finishBarPlot(p *plot.Plot, n int) {
	p.X.Min, p.X.Max = -0.5, float64(n)-0.5
	p.Y.Max = niceCeil(p.Y.Max * 1.3)
}

// niceCeil rounds v > 0 up to 1, 1.5, 2, 3, 4, 5, 6 or 8 times a power of
// ten, where the axis ticks fall on round numbers; 1 for v ≤ 0.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	pow := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range [...]float64{1, 1.5, 2, 3, 4, 5, 6, 8} {
		if m*pow >= v {
			return m * pow
		}
	}
	return 10 * pow
}

// addBars adds series i of n to a grouped bar plot, offset so the n series
// sit side by side around each group's centre.
func addBars(p *plot.Plot, name string, vals plotter.Values, c color.Color, i, n int) error {
	bars, err := plotter.NewBarChart(vals, plotBarWidth)
	if err != nil {
		return fmt.Errorf("bars %s: %w", name, err)
	}
	bars.Color, bars.LineStyle.Width = c, 0
	bars.Offset = vg.Length(float64(i)-float64(n-1)/2) * plotBarWidth
	p.Add(bars)
	p.Legend.Add(name, bars)
	return nil
}

// distinctTargets lists the targets of rows in their first order.
func distinctTargets(rows []Row) []string {
	var ts []string
	seen := make(map[string]bool)
	for i := range rows {
		if !seen[rows[i].Target] {
			seen[rows[i].Target] = true
			ts = append(ts, rows[i].Target)
		}
	}
	return ts
}

// targetValue is target's median of m among rows, 0 when absent.
func targetValue(rows []Row, target string, m Metric) float64 {
	for i := range rows {
		if rows[i].Target == target {
			return rows[i].Values[m]
		}
	}
	return 0
}

// fileSafe keeps letters, digits, '-' and '.' of a name for a file name and
// turns anything else into '_'.
func fileSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.':
			return r
		}
		return '_'
	}, s)
}
