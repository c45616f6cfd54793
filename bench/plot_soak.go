package bench

import (
	"fmt"
	"image/color"
	"os"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// plotSoak draws the soak's readings over time into a PNG at path: RSS,
// open fds and goroutines stacked, sharing the time axis, with the drift
// rule's windows marked (grey: start of the reference window and of the last
// quarter) and each window's floor drawn across it.
func plotSoak(path string, rep *SoakReport) error {
	type panel struct {
		label string
		value func(r Resources) float64
	}
	panels := []panel{
		{"RSS (MiB)", func(r Resources) float64 { return float64(r.RSSBytes) / (1 << 20) }},
		{"open fds", func(r Resources) float64 { return float64(r.FDs) }},
		{"goroutines", func(r Resources) float64 { return float64(r.Goroutines) }},
	}
	if !anyGoroutines(rep.Samples) {
		panels = panels[:2]
	}
	d := rep.Drift
	plots := make([][]*plot.Plot, len(panels))
	for i, pn := range panels {
		p := plot.New()
		p.Y.Label.Text = pn.label
		if i == 0 {
			drift := "no upward drift"
			for _, f := range d.Failures {
				drift = "drift not judged"
				if strings.HasPrefix(f, "upward drift") {
					drift = "UPWARD DRIFT"
					break
				}
			}
			p.Title.Text = fmt.Sprintf("soak of %s: %d s, %d hostile steps; %s; %s (dashed: the floors compared)",
				rep.Target, int(d.End), len(rep.Steps), drift, verdictWord(rep.Passed()))
		}
		if i == len(panels)-1 {
			p.X.Label.Text = "seconds since the soak began"
		}
		pts := make(plotter.XYs, 0, len(rep.Samples))
		for _, s := range rep.Samples {
			if v := pn.value(s.Res); v >= 0 {
				pts = append(pts, plotter.XY{X: s.Seconds, Y: v})
			}
		}
		if len(pts) > 0 {
			l, err := plotter.NewLine(pts)
			if err != nil {
				return fmt.Errorf("soak plot: %w", err)
			}
			l.Color, l.Width = plotutil.Color(0), vg.Points(1.2)
			p.Add(l)
		}
		for _, w := range [...]struct {
			from, to float64
			floor    Resources
		}{{d.RefStart, d.LastStart, d.RefFloor}, {d.LastStart, d.End, d.LastFloor}} {
			if w.to <= w.from {
				continue
			}
			if v := pn.value(w.floor); v >= 0 {
				fl, err := plotter.NewLine(plotter.XYs{{X: w.from, Y: v}, {X: w.to, Y: v}})
				if err != nil {
					return fmt.Errorf("soak plot: %w", err)
				}
				fl.Color, fl.Width, fl.Dashes = plotutil.Color(1), vg.Points(1), []vg.Length{vg.Points(4), vg.Points(3)}
				p.Add(fl)
			}
		}
		p.Y.Min = 0
		p.Y.Max = niceCeil(p.Y.Max * 1.1)
		for _, x := range [...]float64{d.RefStart, d.LastStart} {
			if x > 0 {
				v, err := plotter.NewLine(plotter.XYs{{X: x, Y: 0}, {X: x, Y: p.Y.Max}})
				if err != nil {
					return fmt.Errorf("soak plot: %w", err)
				}
				v.Color = color.Gray{Y: 160}
				p.Add(v)
			}
		}
		p.Add(plotter.NewGrid())
		p.X.Min = 0
		if d.End > 0 {
			p.X.Max = d.End
		}
		plots[i] = []*plot.Plot{p}
	}
	img := vgimg.New(plotWidth, vg.Length(len(panels))*plotHeight/2)
	dc := draw.New(img)
	t := draw.Tiles{Rows: len(panels), Cols: 1, PadY: vg.Millimeter * 2, PadTop: vg.Millimeter * 2,
		PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4}
	canvases := plot.Align(plots, t, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("soak plot: %w", err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("soak plot: %w", err)
	}
	return f.Close()
}

func anyGoroutines(ss []SoakSample) bool {
	for _, s := range ss {
		if s.Res.Goroutines >= 0 {
			return true
		}
	}
	return false
}

func verdictWord(pass bool) string {
	if pass {
		return "PASS"
	}
	return "FAIL"
}
