package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// hostileRun is a hostile result: pass, or fail with the given reasons.
func hostileRun(scenario, target string, failures ...string) Result {
	g := 78
	if target == "tcp-relay" {
		g = -1
	}
	return Result{Scenario: scenario, Target: target, Round: 1, Sessions: 10, Opened: 10, Closed: 10, Params: map[string]string{},
		Hostile: &HostileResult{
			Before:        Resources{RSSBytes: 15 << 20, FDs: 20, Goroutines: g},
			Peak:          Resources{RSSBytes: 206 << 20, FDs: 42, Goroutines: g},
			After:         Resources{RSSBytes: 205 << 20, FDs: 20, Goroutines: g},
			SettleSeconds: 15, Failures: failures}}
}

func TestHostileMarkdown(t *testing.T) {
	rs := []Result{
		hostileRun("pong-flood", "tcp-relay"),
		hostileRun("pong-flood", "consoleproxy", "not back to baseline: RSS 205.0 MiB > baseline 15.0 MiB + 16.0 MiB"),
	}
	rs[1].Hostile.CorruptDetails = []string{"session 3: byte 8 is 0x1, the client sent 0x2 there"}
	md, err := hostileMarkdown(rs, "consolebench --scenarios pong-flood")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", md)
	for _, w := range []string{
		"## Hostile clients\n", "consolebench --scenarios pong-flood",
		"| scenario | target | sessions | opened | RSS MiB before / peak / after | fds before / peak / after | goroutines before / peak / after | settle s | result |",
		"| pong-flood | tcp-relay | 10 | 10 | 15.0 / 206 / 205 | 20 / 42 / 20 | - / - / - | 15.0 | pass |",
		"| pong-flood | consoleproxy | 10 | 10 | 15.0 / 206 / 205 | 20 / 42 / 20 | 78 / 78 / 78 | 15.0 | **FAIL** |",
		"- **pong-flood, consoleproxy**: not back to baseline: RSS 205.0 MiB",
		"  - session 3: byte 8",
	} {
		if !strings.Contains(md, w) {
			t.Errorf("hostile section lacks %q", w)
		}
	}
	if strings.Contains(md, "round |") {
		t.Error("a round column with one round")
	}
	if fails := HostileFailures(rs); len(fails) != 1 || !strings.HasPrefix(fails[0], "pong-flood/consoleproxy: not back") {
		t.Errorf("failures %q", fails)
	}
}

func TestSpliceSection(t *testing.T) {
	sec := "## Hostile clients\n\nnew\n"
	for _, tc := range []struct{ name, doc, want string }{
		{"replaced in place", "# B\n\n## Results\n\nr\n\n## Hostile clients\n\nold\n\n## Plots\n\np\n",
			"# B\n\n## Results\n\nr\n\n## Hostile clients\n\nnew\n\n## Plots\n\np\n"},
		{"replaced at the end", "# B\n\n## Hostile clients\n\nold\n", "# B\n\n## Hostile clients\n\nnew\n\n"},
		{"inserted before the plots", "# B\n\n## Results\n\nr\n\n## Plots\n\np\n\n## Notes\n\nn\n",
			"# B\n\n## Results\n\nr\n\n## Hostile clients\n\nnew\n\n## Plots\n\np\n\n## Notes\n\nn\n"},
		{"inserted before the notes", "# B\n\n## Results\n\nr\n\n## Notes\n\nn\n",
			"# B\n\n## Results\n\nr\n\n## Hostile clients\n\nnew\n\n## Notes\n\nn\n"},
		{"appended", "# B\n\ntext", "# B\n\ntext\n\n## Hostile clients\n\nnew\n\n"},
		{"a heading only as a prefix is not it", "# B\n\n## Hostile clients here\n\nx\n",
			"# B\n\n## Hostile clients here\n\nx\n\n## Hostile clients\n\nnew\n\n"},
	} {
		if got := spliceSection(tc.doc, hostileHeading, sec, "## Plots", "## Notes"); got != tc.want {
			t.Errorf("%s:\n%q\nwant\n%q", tc.name, got, tc.want)
		}
	}
}

// BENCHMARKS.md: a load run rewrites the page but keeps the hostile
// section; a hostile run replaces only that section.
func TestBenchmarksMDHostileSection(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "BENCHMARKS.md")
	cfg := Config{ResultsDir: filepath.Join(dir, "results"), BenchmarksMD: path, Command: "load-run"}.Defaults()
	if err := writeReports(cfg, []Result{hostileRun("slowloris", "consoleproxy")}); err != nil {
		t.Fatal(err)
	}
	page := readFile(t, path)
	if !strings.HasPrefix(page, "# Benchmarks\n") || !strings.Contains(page, "| slowloris | consoleproxy |") {
		t.Fatalf("hostile run on a missing page:\n%s", page)
	}
	if err := writeReports(cfg, sampleResults()); err != nil {
		t.Fatal(err)
	}
	page = readFile(t, path)
	if !strings.Contains(page, "### hold") || !strings.Contains(page, "| slowloris | consoleproxy |") {
		t.Fatalf("load run lost the hostile section:\n%s", page)
	}
	if !inOrder(page, []string{"## Results", "## Hostile clients", "## Plots"}) {
		t.Errorf("sections out of order")
	}
	cfg.Command = "hostile-run"
	if err := writeReports(cfg, []Result{hostileRun("reset-storm", "consoleproxy", "3 compute-host connections received bytes no client sent")}); err != nil {
		t.Fatal(err)
	}
	page = readFile(t, path)
	if strings.Contains(page, "| slowloris |") || !strings.Contains(page, "| reset-storm | consoleproxy |") ||
		!strings.Contains(page, "### hold") || !strings.Contains(page, "```sh\nload-run\n```") || !strings.Contains(page, "```sh\nhostile-run\n```") {
		t.Fatalf("hostile run did not replace just its section:\n%s", page)
	}
	if strings.Count(page, "## Hostile clients") != 1 {
		t.Errorf("%d hostile sections", strings.Count(page, "## Hostile clients"))
	}
	results := readFile(t, filepath.Join(cfg.ResultsDir, "results.md"))
	if !strings.Contains(results, "| reset-storm | consoleproxy |") || strings.Contains(results, "### reset-storm") {
		t.Errorf("results.md: the hostile run belongs in its own table only:\n%s", results)
	}
	if _, err := os.Stat(filepath.Join(cfg.ResultsDir, "results.jsonl")); err != nil {
		t.Error(err)
	}
}

// A load run rewrites BENCHMARKS.md from its results but keeps the
// hand-written performance history in place: once, in order, after the
// TLS section and before the hostile one.
func TestBenchmarksMDKeepsPerformanceSections(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "BENCHMARKS.md")
	cfg := Config{ResultsDir: filepath.Join(dir, "results"), BenchmarksMD: path, Command: "load-run"}.Defaults()
	if err := writeReports(cfg, append(sampleResults(), hostileRun("slowloris", "consoleproxy"))); err != nil {
		t.Fatal(err)
	}
	page := readFile(t, path)
	history := "## Performance, round 1 (issue 14)\nfirst change\n\n## Performance, round 2 (issue 14)\nsecond change, a table:\n\n| a | b |\n\n"
	at := strings.Index(page, hostileHeading)
	if at < 0 {
		t.Fatalf("no hostile section:\n%s", page)
	}
	if err := os.WriteFile(path, []byte(page[:at]+history+page[at:]), 0o644); err != nil {
		t.Fatal(err)
	}
	for run := 0; run < 2; run++ {
		if err := writeReports(cfg, sampleResults()); err != nil {
			t.Fatal(err)
		}
		page = readFile(t, path)
		if strings.Count(page, "## Performance, round 1") != 1 || strings.Count(page, "second change, a table:\n\n| a | b |") != 1 {
			t.Fatalf("run %d: the performance history was not kept once:\n%s", run, page)
		}
		if !inOrder(page, []string{"## Results", "## Performance, round 1", "## Performance, round 2", hostileHeading, "## Plots"}) {
			t.Fatalf("run %d: sections out of order:\n%s", run, page)
		}
	}
}
