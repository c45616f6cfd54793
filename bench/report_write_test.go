package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func TestWriteReport(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "out") // not there yet
	rs := sampleResults()
	if err := WriteReport(dir, rs, "", "consolebench --rounds 3"); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "results.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	back, err := ReadJSONL(f)
	if err != nil || !reflect.DeepEqual(back, rs) {
		t.Errorf("results.jsonl does not read back as the results (err %v)", err)
	}
	md := readFile(t, filepath.Join(dir, "results.md"))
	for _, w := range []string{"consolebench --rounds 3", "### hold", "| 1000 | consoleproxy |", "×0.85"} {
		if !strings.Contains(md, w) {
			t.Errorf("results.md lacks %q", w)
		}
	}
	for _, name := range []string{"latency-echo-10", "latency-echo-1000", "latency-churn-10", "throughput-stream-down", "throughput-mixed", "memory-hold-10", "memory-hold-1000"} {
		checkPlotFiles(t, filepath.Join(dir, name))
	}
}

// checkPlotFiles asserts base.png is a PNG and base.svg an SVG.
func checkPlotFiles(t *testing.T, base string) {
	t.Helper()
	png := readFile(t, base+".png")
	if !strings.HasPrefix(png, "\x89PNG\r\n\x1a\n") || len(png) < 1000 {
		t.Errorf("%s.png: %d bytes, not a PNG", base, len(png))
	}
	svg := strings.TrimSpace(readFile(t, base+".svg"))
	if !strings.HasPrefix(svg, "<?xml") && !strings.HasPrefix(svg, "<svg") {
		t.Errorf("%s.svg does not start as SVG: %.40q", base, svg)
	}
}

func TestWriteBenchmarksMD(t *testing.T) {
	root := t.TempDir()
	path := filepath.Join(root, "docs", "BENCHMARKS.md")
	plotDir := filepath.Join(root, "bench", "results", "plots")
	if err := WriteBenchmarksMD(path, plotDir, sampleResults(), "", "make bench ROUNDS=3"); err != nil {
		t.Fatal(err)
	}
	md := readFile(t, path)
	for _, w := range []string{"# Benchmarks", "Measured on 20", "```sh\nmake bench ROUNDS=3\n```", "CPUs", "go1.",
		"## How to read", "median over rounds", "side by side", "Higher is better (↑): MB/s", "Lower is better (↓):",
		"## Results", "### stream-down", "×0.85", "## Plots"} {
		if !strings.Contains(md, w) {
			t.Errorf("BENCHMARKS.md lacks %q", w)
		}
	}
	links := regexp.MustCompile(`\]\(([^)]+)\)`).FindAllStringSubmatch(md, -1)
	if len(links) < 14 {
		t.Fatalf("%d links, want a PNG and an SVG for each of 7 plots", len(links))
	}
	for _, l := range links {
		if filepath.IsAbs(l[1]) || !strings.HasPrefix(l[1], "../bench/results/plots/") {
			t.Errorf("link %q is not relative to BENCHMARKS.md", l[1])
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(path), filepath.FromSlash(l[1]))); err != nil {
			t.Errorf("link %q does not resolve: %v", l[1], err)
		}
	}
}

func TestWriteReportNoResults(t *testing.T) {
	dir := t.TempDir()
	if err := WriteReport(dir, nil, "", "consolebench"); err != nil {
		t.Fatal(err)
	}
	if err := WriteBenchmarksMD(filepath.Join(dir, "B.md"), dir, nil, "", "consolebench"); err != nil {
		t.Fatal(err)
	}
}

func TestFindField(t *testing.T) {
	in := "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nMemTotal:       24683652 kB\n"
	tests := map[string]string{"model name": "AMD EPYC 7B13", "MemTotal": "24683652 kB", "processor": "0", "flags": ""}
	for key, want := range tests {
		if got := findField(bytes.NewBufferString(in), key); got != want {
			t.Errorf("findField(%q) = %q, want %q", key, got, want)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
