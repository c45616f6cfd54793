package bench

import (
	"math"
	"slices"
	"testing"
)

func TestPlanPlots(t *testing.T) {
	specs := planPlots(Summarize(sampleResults(), ""))
	var names []string
	for _, s := range specs {
		names = append(names, s.name)
	}
	want := []string{
		"memory-hold-10", "memory-hold-1000",
		"latency-echo-10", "latency-echo-1000", "latency-churn-10", "latency-churn-1000",
		"throughput-stream-down", "throughput-mixed",
	}
	if !slices.Equal(names, want) {
		t.Errorf("plots %v, want %v", names, want)
	}
}

func TestRowCDF(t *testing.T) {
	tests := []struct {
		name string
		row  Row
		want [][2]float64 // as XY pairs
	}{
		{"from CDF, zero raised for the log axis", Row{CDF: [][2]float64{{0, 0.1}, {2, 1}}}, [][2]float64{{plotMinMs, 0.1}, {2, 1}}},
		{"from percentiles", Row{Latency: &Percentiles{Count: 9, P50: 1, P90: 2, P99: 3, P999: 4, Max: 5}},
			[][2]float64{{1, 0.5}, {2, 0.9}, {3, 0.99}, {4, 0.999}, {5, 1}}},
		{"no latency", Row{}, nil},
	}
	for _, tt := range tests {
		pts := rowCDF(&tt.row)
		var got [][2]float64
		for _, p := range pts {
			got = append(got, [2]float64{p.X, p.Y})
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestFileSafe(t *testing.T) {
	if got := fileSafe("stream-down/x y.1"); got != "stream-down_x_y.1" {
		t.Errorf("fileSafe = %q", got)
	}
}

func TestNiceCeil(t *testing.T) {
	tests := []struct{ in, want float64 }{{0, 1}, {260, 300}, {200, 200}, {201, 300}, {19.5, 20}, {0.042, 0.05}, {9, 10}, {81, 100}}
	for _, tt := range tests {
		if got := niceCeil(tt.in); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("niceCeil(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
