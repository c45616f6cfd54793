package bench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// WriteReport writes a run's report into dir, creating it if missing:
// results.jsonl (every Result), results.md (the table, see WriteMarkdown;
// hostile runs in their own section, see WriteHostileMarkdown) and the
// plots of the load runs, each as PNG and SVG (see WriteBenchmarksMD). reference is
// the target the others are compared with (DefaultReference when empty);
// command is the command line that produced rs, quoted in results.md.
func WriteReport(dir string, rs []Result, reference, command string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("report directory: %w", err)
	}
	load, hostile := splitHostile(rs)
	load, tlsRs := splitTLS(load)
	rows := Summarize(load, reference)
	err := writeFileWith(filepath.Join(dir, "results.jsonl"), func(w io.Writer) error {
		return WriteJSONL(w, rs)
	})
	if err != nil {
		return err
	}
	err = writeFileWith(filepath.Join(dir, "results.md"), func(w io.Writer) error {
		fmt.Fprintf(w, "# consolebench results\n\n%s\n", commandBlock(command))
		if err := WriteMarkdown(w, rows); err != nil {
			return err
		}
		if len(tlsRs) > 0 {
			if err := WriteTLSMarkdown(w, tlsRs, reference, command); err != nil {
				return err
			}
		}
		if len(hostile) == 0 {
			return nil
		}
		return WriteHostileMarkdown(w, hostile, command)
	})
	if err != nil {
		return err
	}
	_, err = writePlots(dir, rows)
	return err
}

// WriteBenchmarksMD writes the BENCHMARKS.md at path: a title, today's date,
// the command, a note on the machine, how to read the numbers, the table,
// then the plots as images. The plots are rendered into plotDir (created if
// missing) and linked relative to path's directory, so the links resolve
// wherever the two are moved together.
func WriteBenchmarksMD(path, plotDir string, rs []Result, reference, command string) error {
	rows := Summarize(rs, reference)
	for _, d := range [...]string{filepath.Dir(path), plotDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("benchmarks directory: %w", err)
		}
	}
	specs, err := writePlots(plotDir, rows)
	if err != nil {
		return err
	}
	rel, err := relativeDir(filepath.Dir(path), plotDir)
	if err != nil {
		return err
	}
	return writeFileWith(path, func(w io.Writer) error {
		fmt.Fprintf(w, "# Benchmarks\n\nMeasured on %s with:\n\n%s\n", time.Now().Format(time.DateOnly), commandBlock(command))
		fmt.Fprintf(w, "Machine: %s.\n\n## How to read\n\n%s\n\n## Results\n\n", machineNote(), howToRead(rows))
		if err := WriteMarkdown(w, rows); err != nil {
			return err
		}
		writeImageLinks(w, rel, specs)
		return nil
	})
}

// commandBlock quotes a command line as a fenced shell block.
func commandBlock(command string) string {
	return "```sh\n" + strings.TrimSpace(command) + "\n```\n"
}

// relativeDir is target relative to base, in slash form for Markdown links.
func relativeDir(base, target string) (string, error) {
	absBase, err := filepath.Abs(base)
	if err != nil {
		return "", fmt.Errorf("plot links: %w", err)
	}
	absTarget, err := filepath.Abs(target)
	if err != nil {
		return "", fmt.Errorf("plot links: %w", err)
	}
	rel, err := filepath.Rel(absBase, absTarget)
	if err != nil {
		return "", fmt.Errorf("plot links: %w", err)
	}
	return filepath.ToSlash(rel), nil
}

// writeImageLinks writes the plots section: each PNG as an image, its SVG
// linked beside it. Write errors surface when the caller flushes.
func writeImageLinks(w io.Writer, rel string, specs []plotSpec) {
	if len(specs) == 0 {
		return
	}
	fmt.Fprintf(w, "## Plots\n\n")
	for _, s := range specs {
		base := rel + "/" + s.name
		fmt.Fprintf(w, "![%s](%s.png)\n\n[SVG](%s.svg)\n\n", s.title, base, base)
	}
}

// howToRead explains the table, its ratios and which direction is better
// for each column.
func howToRead(rows []Row) string {
	ref := DefaultReference
	if len(rows) > 0 {
		ref = rows[0].Reference
	}
	var higher, lower []string
	for m := range numMetrics {
		switch m.Better() {
		case Higher:
			higher = append(higher, m.Header())
		case Lower:
			lower = append(lower, m.Header())
		}
	}
	return fmt.Sprintf("Every value is the median over rounds of one (scenario, sessions, target); "+
		"the rounds column says how many, and opened/failed sums the sessions over them, failures in bold. "+
		"Targets alternate within each round, so %[1]s, the reference, "+
		"is measured side by side with the others in the same run, on the same machine. "+
		"A \"vs %[1]s\" column is that target's median divided by %[1]s's at the same scenario and sessions: "+
		"×0.85 of its throughput means 15 %% less, ×1.3 of its p99 means 30 %% slower; "+
		"— means %[1]s has no row to compare with. "+
		"Higher is better (↑): %[2]s. Lower is better (↓): %[3]s. "+
		"Open fds and client CPU are for context: the client's CPU should stay well below the proxy's, "+
		"or the harness, not the proxy, is the bottleneck.",
		ref, strings.Join(higher, ", "), strings.Join(lower, ", "))
}

// machineNote describes the machine the benchmarks ran on: CPUs, memory,
// OS and architecture, Go version.
func machineNote() string {
	cpu := runtime.NumCPU()
	note := fmt.Sprintf("%d CPUs", cpu)
	if model := procField("/proc/cpuinfo", "model name"); model != "" {
		note += " (" + model + ")"
	}
	if kb, err := strconv.ParseInt(strings.TrimSuffix(procField("/proc/meminfo", "MemTotal"), " kB"), 10, 64); err == nil {
		note += fmt.Sprintf(", %.1f GiB RAM", float64(kb)/(1<<20))
	}
	return fmt.Sprintf("%s, %s/%s, %s", note, runtime.GOOS, runtime.GOARCH, runtime.Version())
}

// procField is the value of the first "key: value" line of a /proc file,
// "" when the file or the key is missing.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	return findField(f, key)
}

// findField scans r for the first "key: value" line (spaces or tabs around
// the colon) and returns its value.
func findField(r io.Reader, key string) string {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// writeFileWith creates path and fills it with write through a buffer,
// returning the first error of writing, flushing or closing.
func writeFileWith(path string, write func(w io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	bw := bufio.NewWriter(f)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
