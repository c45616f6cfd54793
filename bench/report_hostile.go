package bench

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"
)

// hostileHeading is the heading of the hostile scenarios' section, in
// results.md and BENCHMARKS.md.
const hostileHeading = "## Hostile clients"

// splitHostile separates load runs from hostile runs, keeping their order.
func splitHostile(rs []Result) (load, hostile []Result) {
	for _, r := range rs {
		if r.Hostile != nil {
			hostile = append(hostile, r)
		} else {
			load = append(load, r)
		}
	}
	return load, hostile
}

// HostileFailures lists every hostile run that failed, one line each
// ("pong-flood/consoleproxy: …"); empty when all passed.
func HostileFailures(rs []Result) []string {
	var out []string
	for _, r := range rs {
		if r.Hostile != nil && !r.Hostile.Passed() {
			out = append(out, fmt.Sprintf("%s/%s: %s", r.Scenario, r.Target, strings.Join(r.Hostile.Failures, "; ")))
		}
	}
	return out
}

// WriteHostileMarkdown writes the hostile section: heading, date and
// command, how to read it, a table with one row per run (scenario × target
// × sessions × round) and the failures listed under it.
func WriteHostileMarkdown(w io.Writer, rs []Result, command string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\nMeasured on %s with:\n\n%s\n%s\n\n", hostileHeading, time.Now().Format(time.DateOnly),
		commandBlock(command), hostileHowToRead)
	writeHostileTable(&b, rs)
	if fails := HostileFailures(rs); len(fails) > 0 {
		b.WriteString("\nWhy the failing runs failed:\n\n")
		for _, r := range rs {
			if r.Hostile == nil || r.Hostile.Passed() {
				continue
			}
			fmt.Fprintf(&b, "- **%s, %s**: %s\n", mdEscape(r.Scenario), mdEscape(r.Target), mdEscape(strings.Join(r.Hostile.Failures, "; ")))
			for _, d := range r.Hostile.CorruptDetails {
				fmt.Fprintf(&b, "  - %s\n", mdEscape(d))
			}
		}
	}
	b.WriteString("\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write hostile table: %w", err)
	}
	return nil
}

const hostileHowToRead = "Each row is one run of a hostile scenario against one target (its own fresh process); " +
	"sessions is its size (reset-storm: per wave), opened the attacking sessions or connections that opened. " +
	"The proxy process is read from /proc (VmRSS, open fds) and, for a Go target, its `go_goroutines` metric " +
	"(\"-\": not a Go process). *Before* is after a warm-up of a few normal sessions, once the fds hold still; " +
	"*peak* the highest reading, every 100 ms, during the attack; *after* once every attacking client is gone, " +
	"as soon as three readings in a row (100 ms apart) are back within the tolerance, else at the settle bound (`--hostile-settle`, 15 s by default). " +
	"A run **passes** when: fds are exactly back, goroutines within +2, RSS within max(16 MiB, 25 %) of before; " +
	"no compute-host connection is left open; no compute host received a byte no client sent (the clients send " +
	"a numbered pattern the built-in consoles check); a well-behaved session is served during and after the attack; " +
	"and every attacking session could open. frame-storm and upload-slow-host also require that no session was " +
	"ended by the proxy and that the hosts received exactly the payload the clients sent. " +
	"tcp-relay is haproxy in TCP mode (no WebSocket: pings and frames are plain bytes there), " +
	"with client and server timeouts of two thirds of the settle bound (2–10 s) in these runs."

// writeHostileTable writes the table of hostile runs.
func writeHostileTable(b *strings.Builder, rs []Result) {
	rounds := false
	for _, r := range rs {
		rounds = rounds || r.Round > 1
	}
	b.WriteString("| scenario | target | sessions | opened |")
	if rounds {
		b.WriteString(" round |")
	}
	b.WriteString(" RSS MiB before / peak / after | fds before / peak / after | goroutines before / peak / after | settle s | result |\n")
	b.WriteString("| --- | --- | ---: | ---: |")
	if rounds {
		b.WriteString(" ---: |")
	}
	b.WriteString(" ---: | ---: | ---: | ---: | --- |\n")
	for _, r := range rs {
		h := r.Hostile
		if h == nil {
			continue
		}
		fmt.Fprintf(b, "| %s | %s | %d | %d |", mdEscape(r.Scenario), mdEscape(r.Target), r.Sessions, r.Opened)
		if rounds {
			fmt.Fprintf(b, " %d |", r.Round)
		}
		verdict := "pass"
		if !h.Passed() {
			verdict = "**FAIL**"
		}
		fmt.Fprintf(b, " %s / %s / %s | %d / %d / %d | %s / %s / %s | %s | %s |\n",
			mibCell(h.Before.RSSBytes), mibCell(h.Peak.RSSBytes), mibCell(h.After.RSSBytes),
			h.Before.FDs, h.Peak.FDs, h.After.FDs,
			goroutineCell(h.Before.Goroutines), goroutineCell(h.Peak.Goroutines), goroutineCell(h.After.Goroutines),
			formatValue(h.SettleSeconds), verdict)
	}
}

// mibCell prints bytes as MiB with about three significant digits.
func mibCell(b int64) string { return formatValue(float64(b) / (1 << 20)) }

// spliceSection returns doc with the section that starts at the line
// heading (up to the next "## " heading) replaced by section; when doc has
// no such section, section goes before the first of the headings in
// before that doc has, else at the end.
func spliceSection(doc, heading, section string, before ...string) string {
	section = strings.TrimRight(section, "\n") + "\n\n"
	if start := headingAt(doc, heading); start >= 0 {
		end := len(doc)
		if next := headingFrom(doc, start+len(heading)); next >= 0 {
			end = next
		}
		return doc[:start] + section + doc[end:]
	}
	for _, h := range before {
		if at := headingAt(doc, h); at >= 0 {
			return doc[:at] + section + doc[at:]
		}
	}
	if doc != "" && !strings.HasSuffix(doc, "\n\n") {
		doc = strings.TrimRight(doc, "\n") + "\n\n"
	}
	return doc + section
}

// headingAt is the offset of the line that is exactly heading, or -1.
func headingAt(doc, heading string) int {
	for off := 0; off < len(doc); {
		end := strings.IndexByte(doc[off:], '\n')
		line := doc[off:]
		if end >= 0 {
			line = doc[off : off+end]
		}
		if line == heading {
			return off
		}
		if end < 0 {
			break
		}
		off += end + 1
	}
	return -1
}

// headingFrom is the offset of the first "## " line after from, or -1.
func headingFrom(doc string, from int) int {
	for off := from; off < len(doc); {
		nl := strings.IndexByte(doc[off:], '\n')
		if nl < 0 {
			return -1
		}
		off += nl + 1
		if strings.HasPrefix(doc[off:], "## ") {
			return off
		}
	}
	return -1
}

// sectionOf is doc's section under heading (to the next "## "), "" if none.
func sectionOf(doc, heading string) string {
	start := headingAt(doc, heading)
	if start < 0 {
		return ""
	}
	end := len(doc)
	if next := headingFrom(doc, start+len(heading)); next >= 0 {
		end = next
	}
	return doc[start:end]
}

// putHostileSection writes section into the Markdown file at path in
// place of its hostile section (before its plots or notes when it has
// none); a missing file starts as "# Benchmarks".
func putHostileSection(path, section string) error {
	old, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		old = []byte("# Benchmarks\n\n")
	} else if err != nil {
		return fmt.Errorf("hostile section: %w", err)
	}
	doc := spliceSection(string(old), hostileHeading, section, "## Plots", "## Notes")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		return fmt.Errorf("hostile section: %w", err)
	}
	return nil
}

// hostileSectionOf reads the hostile section of the file at path ("" when
// the file or the section is missing).
func hostileSectionOf(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return sectionOf(string(b), hostileHeading)
}

// hostileMarkdown renders WriteHostileMarkdown into a string.
func hostileMarkdown(rs []Result, command string) (string, error) {
	var b strings.Builder
	err := WriteHostileMarkdown(&b, rs, command)
	return b.String(), err
}
