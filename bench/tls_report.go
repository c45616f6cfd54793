package bench

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// tlsHeading is the heading of the TLS scenarios' section, in results.md
// and BENCHMARKS.md.
const tlsHeading = "## TLS"

// tlsTargetRatio is issue 13's bound: wss:// throughput at least this
// share of plain; ratios under it are shown in bold.
const tlsTargetRatio = 0.9

// splitTLS separates the TLS scenarios' runs from the others, keeping
// their order.
func splitTLS(rs []Result) (other, tlsRuns []Result) {
	for _, r := range rs {
		if isTLSScenario(r.Scenario) {
			tlsRuns = append(tlsRuns, r)
		} else {
			other = append(other, r)
		}
	}
	return other, tlsRuns
}

// tlsRuns groups runs by (scenario, sessions, target).
type tlsRuns map[rowKey][]*Result

func groupTLS(rs []Result) tlsRuns {
	g := tlsRuns{}
	for i := range rs {
		k := rowKey{rs[i].Scenario, rs[i].Sessions, rs[i].Target}
		g[k] = append(g[k], &rs[i])
	}
	return g
}

// median is the median over k's runs of f, false when there are none.
func (g tlsRuns) median(k rowKey, f func(r *Result) float64) (float64, bool) {
	runs := g[k]
	if len(runs) == 0 {
		return 0, false
	}
	vs := make([]float64, len(runs))
	for i, r := range runs {
		vs[i] = f(r)
	}
	return roundMedian(vs), true
}

// cell is the median of f over k's runs, "—" when k has none.
func (g tlsRuns) cell(k rowKey, f func(r *Result) float64) string {
	v, ok := g.median(k, f)
	if !ok {
		return "—"
	}
	return formatValue(v)
}

// ratioOf is median(a)/median(b) as "×0.95" (bold under bound when bound
// > 0), "—" when either is missing or b's is 0.
func (g tlsRuns) ratioOf(a, b rowKey, f func(r *Result) float64, bound float64) string {
	x, okA := g.median(a, f)
	y, okB := g.median(b, f)
	if !okA || !okB || y == 0 {
		return "—"
	}
	s := formatRatio(x / y)
	if bound > 0 && x/y < bound {
		return "**" + s + "**"
	}
	return s
}

// counts sums opened and failed over k's runs.
func (g tlsRuns) counts(k rowKey) string {
	var o, f int
	for _, r := range g[k] {
		o, f = o+r.Opened, f+r.Failed
	}
	if f > 0 {
		return fmt.Sprintf("%d/**%d**", o, f)
	}
	return fmt.Sprintf("%d/0", o)
}

// sessions and targets present in the runs, ascending; the reference
// target first.
func (g tlsRuns) sessionsOf(scenario string) []int {
	var out []int
	for k := range g {
		if k.scenario == scenario && !slices.Contains(out, k.sessions) {
			out = append(out, k.sessions)
		}
	}
	slices.Sort(out)
	return out
}

func (g tlsRuns) targets(reference string) []string {
	var out []string
	for k := range g {
		if !slices.Contains(out, k.target) {
			out = append(out, k.target)
		}
	}
	slices.SortFunc(out, func(a, b string) int {
		return cmp.Or(compareBool(a != reference, b != reference), strings.Compare(a, b))
	})
	return out
}

func mbps(r *Result) float64      { return r.MBps }
func cpuPerGB(r *Result) float64  { return r.ProxyCPUSecPerGB }
func hsPerSec(r *Result) float64  { return r.SessionsPerSecond }
func clientCPU(r *Result) float64 { return r.ClientCPUSeconds }

// cpuMsPerHandshake is the proxy's CPU milliseconds per completed handshake.
func cpuMsPerHandshake(r *Result) float64 {
	if r.Messages == 0 {
		return 0
	}
	return r.ProxyCPUSeconds * 1000 / float64(r.Messages)
}

func latencyOf(pick func(p *Percentiles) float64) func(r *Result) float64 {
	return func(r *Result) float64 {
		if r.Latency == nil {
			return 0
		}
		return pick(r.Latency)
	}
}

// WriteTLSMarkdown writes the TLS section: heading, date and command, how
// to read it, the throughput table (plain and TLS side by side, their
// ratio) and the handshake table. rs are the TLS scenarios' runs.
func WriteTLSMarkdown(w io.Writer, rs []Result, reference, command string) error {
	if reference == "" {
		reference = DefaultReference
	}
	g := groupTLS(rs)
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\nMeasured on %s with:\n\n%s\nMachine: %s; load average %s when the report was written.\n\n%s\n\n",
		tlsHeading, time.Now().Format(time.DateOnly), commandBlock(command), machineNote(), loadAverage(),
		tlsHowToRead(reference, negotiated(rs)))
	writeTLSThroughput(&b, g, reference)
	writeTLSHandshakes(&b, g, reference)
	if notes := runNotes(Config{}, rs); len(notes) > 0 {
		b.WriteString("Runs whose counts did not add up or that saw errors:\n\n")
		for _, n := range notes {
			b.WriteString("- " + mdEscape(n) + "\n")
		}
		b.WriteString("\n")
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write tls tables: %w", err)
	}
	return nil
}

func tlsHowToRead(reference, negotiated string) string {
	return "Every value is the median over rounds; targets alternate within each round. " +
		"These scenarios run on a goroutine-per-session client (crypto/tls needs a `net.Conn`) " +
		"that takes the same path with TLS and without, so *TLS / plain* is what TLS alone costs: " +
		"consoleproxy's wss:// against its ws://, and " + reference + " (haproxy in TCP mode) terminating TLS " +
		"(`bind … ssl crt`, no session cache, no tickets) against plain TCP; *vs " + reference + "* compares " +
		"the two TLS rows. Issue 13 asks wss:// ≥ ×" + strconv.FormatFloat(tlsTargetRatio, 'g', -1, 64) +
		" of plain; ratios under it are in **bold**. Streams are flat out (stream-down: the host sends; " +
		"stream-up: the client sends 4 KiB frames). Handshakes: each worker opens a fresh connection, does a full " +
		"handshake (the client keeps no session cache, so nothing is resumed; it verifies the certificate), then the WebSocket upgrade " +
		"(consoleproxy, which also connects to the host) or one byte echoed by the host (" + reference + "), and closes; " +
		"*proxy CPU ms/handshake* is the proxy's CPU over the phase divided by the handshakes done. " +
		"The client offers X25519 only (haproxy's OpenSSL 3.0 has no X25519MLKEM768, which Go would pick); " +
		"negotiated: " + negotiated + ". Client CPU is this whole process, the in-process compute hosts included; " +
		"on this 2-core machine the client's TLS shares the cores with the proxy, so MB/s over TLS " +
		"understates both targets alike, while proxy CPU-s/GB is the proxy's own cost: " +
		"*TLS / plain at equal proxy CPU* (plain CPU-s/GB ÷ TLS CPU-s/GB) is what TLS would move, against plain, " +
		"where the proxy's CPU is the limit and the clients are elsewhere."
}

// negotiated says what the TLS runs negotiated ("consoleproxy ecdsa-p256:
// TLS 1.3, TLS_AES_128_GCM_SHA256, X25519"), each distinct combination once.
func negotiated(rs []Result) string {
	var seen []string
	for _, r := range rs {
		v := r.Params["tls_version"]
		if v == "" {
			continue
		}
		s := fmt.Sprintf("%s %s: %s, %s, %s", r.Target, r.Params["certificate"], v, r.Params["cipher_suite"], r.Params["group"])
		if !slices.Contains(seen, s) {
			seen = append(seen, s)
		}
	}
	if len(seen) == 0 {
		return "—"
	}
	return strings.Join(seen, "; ")
}

// writeTLSThroughput writes the plain-and-TLS throughput table.
func writeTLSThroughput(b *strings.Builder, g tlsRuns, reference string) {
	b.WriteString("### Throughput: TLS next to plain\n\n")
	b.WriteString("| direction | sessions | target | plain opened/failed | TLS opened/failed | plain MB/s ↑ | TLS MB/s ↑ | TLS / plain ↑ | " +
		"TLS MB/s vs " + mdEscape(reference) + " | plain proxy CPU-s/GB ↓ | TLS proxy CPU-s/GB ↓ | TLS / plain at equal proxy CPU ↑ | plain client CPU s | TLS client CPU s |\n")
	b.WriteString("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, dir := range []string{"stream-down", "stream-up"} {
		sizes := g.sessionsOf("wss-" + dir)
		for _, n := range sizes {
			for _, t := range g.targets(reference) {
				plain, sec := rowKey{"ws-" + dir, n, t}, rowKey{"wss-" + dir, n, t}
				if len(g[plain]) == 0 && len(g[sec]) == 0 {
					continue
				}
				vsRef := "ref"
				if t != reference {
					vsRef = g.ratioOf(sec, rowKey{"wss-" + dir, n, reference}, mbps, 0)
				}
				bound := 0.0
				if t != reference {
					bound = tlsTargetRatio
				}
				fmt.Fprintf(b, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
					dir, n, mdEscape(t), g.counts(plain), g.counts(sec), g.cell(plain, mbps), g.cell(sec, mbps),
					g.ratioOf(sec, plain, mbps, bound), vsRef, g.cell(plain, cpuPerGB), g.cell(sec, cpuPerGB),
					g.ratioOf(plain, sec, cpuPerGB, bound), g.cell(plain, clientCPU), g.cell(sec, clientCPU))
			}
		}
	}
	b.WriteString("\n")
}

// writeTLSHandshakes writes the full-handshake table.
func writeTLSHandshakes(b *strings.Builder, g tlsRuns, reference string) {
	b.WriteString("### Full TLS handshakes\n\n")
	b.WriteString("| certificate | in flight | target | handshakes ok/failed | handshakes/s ↑ | vs " + mdEscape(reference) +
		" | proxy CPU ms/handshake ↓ | vs " + mdEscape(reference) + " | p50 ms ↓ | p99 ms ↓ | client CPU s |\n")
	b.WriteString("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, sc := range []struct{ name, cert string }{
		{"tls-handshakes-ecdsa", string(CertECDSAP256)}, {"tls-handshakes-rsa", string(CertRSA2048)},
	} {
		for _, n := range g.sessionsOf(sc.name) {
			ref := rowKey{sc.name, n, reference}
			for _, t := range g.targets(reference) {
				k := rowKey{sc.name, n, t}
				if len(g[k]) == 0 {
					continue
				}
				vsRate, vsCPU := "ref", "ref"
				if t != reference {
					vsRate, vsCPU = g.ratioOf(k, ref, hsPerSec, 0), g.ratioOf(k, ref, cpuMsPerHandshake, 0)
				}
				fmt.Fprintf(b, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
					sc.cert, n, mdEscape(t), g.counts(k), g.cell(k, hsPerSec), vsRate, g.cell(k, cpuMsPerHandshake), vsCPU,
					g.cell(k, latencyOf(func(p *Percentiles) float64 { return p.P50 })),
					g.cell(k, latencyOf(func(p *Percentiles) float64 { return p.P99 })), g.cell(k, clientCPU))
			}
		}
	}
	b.WriteString("\n")
}

// tlsMarkdown renders WriteTLSMarkdown into a string.
func tlsMarkdown(rs []Result, reference, command string) (string, error) {
	var b strings.Builder
	err := WriteTLSMarkdown(&b, rs, reference, command)
	return b.String(), err
}

// tlsSectionOf reads the TLS section of the file at path ("" when the file
// or the section is missing).
func tlsSectionOf(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return sectionOf(string(b), tlsHeading)
}

// putTLSSection writes section into the Markdown file at path in place of
// its TLS section (before its hostile section, plots or notes when it has
// none); a missing file starts as "# Benchmarks".
func putTLSSection(path, section string) error {
	old, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		old = []byte("# Benchmarks\n\n")
	} else if err != nil {
		return fmt.Errorf("tls section: %w", err)
	}
	doc := spliceSection(string(old), tlsHeading, section, hostileHeading, "## Plots", "## Notes")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		return fmt.Errorf("tls section: %w", err)
	}
	return nil
}

// putTLSSectionOf puts the TLS section into cfg.BenchmarksMD: rendered
// from rs when this run has TLS runs, else kept as it was (old, read
// before the page was rewritten; nothing when it had none).
func putTLSSectionOf(cfg Config, rs []Result, old string) error {
	section := old
	if len(rs) > 0 {
		var err error
		if section, err = tlsMarkdown(rs, cfg.Reference, cfg.Command); err != nil {
			return err
		}
	}
	if section == "" {
		return nil
	}
	return putTLSSection(cfg.BenchmarksMD, section)
}

// loadAverage is /proc/loadavg's 1, 5 and 15 minute figures ("?" when
// unreadable): on a shared machine, how busy it was beside the run.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " / ")
	}
	return "?"
}
