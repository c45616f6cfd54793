package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The TLS section: medians over rounds, TLS / plain per target with the
// ratios under issue 13's ×0.9 in bold (the reference's are not judged),
// consoleproxy's TLS row against haproxy's, CPU ms per handshake, and "—"
// where a side is missing.
func TestWriteTLSMarkdown(t *testing.T) {
	run := func(sc, target string, round int, mbps, cpuGB float64) Result {
		return Result{Scenario: sc, Target: target, Round: round, Sessions: 1, Opened: 1, Closed: 1,
			MBps: mbps, ProxyCPUSecPerGB: cpuGB, Params: map[string]string{}}
	}
	hs := func(target string, rate, cpu float64, n int64) Result {
		return Result{Scenario: "tls-handshakes-rsa", Target: target, Round: 1, Sessions: 16, Opened: int(n), Closed: int(n),
			Messages: n, SessionsPerSecond: rate, ProxyCPUSeconds: cpu,
			Params: map[string]string{"tls_version": "TLS 1.3", "cipher_suite": "TLS_AES_128_GCM_SHA256", "group": "X25519", "certificate": "rsa-2048"}}
	}
	rs := []Result{
		run("ws-stream-down", "consoleproxy", 1, 100, 1), run("ws-stream-down", "consoleproxy", 2, 300, 1), run("ws-stream-down", "consoleproxy", 3, 200, 1),
		run("wss-stream-down", "consoleproxy", 1, 190, 2), run("wss-stream-down", "consoleproxy", 2, 150, 2), run("wss-stream-down", "consoleproxy", 3, 180, 2),
		run("ws-stream-down", "tcp-relay", 1, 400, 1), run("wss-stream-down", "tcp-relay", 1, 100, 4),
		run("ws-stream-up", "consoleproxy", 1, 100, 1), run("wss-stream-up", "consoleproxy", 1, 95, 1.5),
		run("wss-stream-up", "tcp-relay", 1, 50, 1),
		hs("tcp-relay", 200, 1, 400), hs("consoleproxy", 300, 3, 600),
	}
	var b strings.Builder
	if err := WriteTLSMarkdown(&b, rs, "tcp-relay", "consolebench --scenarios tls"); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"## TLS\n",
		// median plain 200, TLS 180: ×0.9 is not under the bound; twice the CPU: ×0.5 at equal CPU, in
		// bold; TLS vs haproxy's 100: ×1.8. The reference's own ratios are not judged.
		"| stream-down | 1 | tcp-relay | 1/0 | 1/0 | 400 | 100 | ×0.25 | ref | 1.00 | 4.00 | ×0.25 |",
		"| stream-down | 1 | consoleproxy | 3/0 | 3/0 | 200 | 180 | ×0.9 | ×1.8 | 1.00 | 2.00 | **×0.5** |",
		"| stream-up | 1 | tcp-relay | 0/0 | 1/0 | — | 50.0 | — | ref |",
		"| stream-up | 1 | consoleproxy | 1/0 | 1/0 | 100 | 95.0 | ×0.95 | ×1.9 | 1.00 | 1.50 | **×0.67** |",
		"| rsa-2048 | 16 | tcp-relay | 400/0 | 200 | ref | 2.50 | ref |",
		"| rsa-2048 | 16 | consoleproxy | 600/0 | 300 | ×1.5 | 5.00 | ×2 |",
		"consoleproxy rsa-2048: TLS 1.3, TLS_AES_128_GCM_SHA256, X25519",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("lacks %q:\n%s", want, md)
		}
	}
	rs[5].MBps = 100 // consoleproxy's TLS median now 150 of 200: ×0.75, in bold
	b.Reset()
	if err := WriteTLSMarkdown(&b, rs, "tcp-relay", "c"); err != nil {
		t.Fatal(err)
	}
	if want := "| 200 | 150 | **×0.75** |"; !strings.Contains(b.String(), want) {
		t.Errorf("lacks %q:\n%s", want, b.String())
	}
}

// The TLS section goes before the hostile one in BENCHMARKS.md and
// replaces its earlier self; other sections stay.
func TestPutTLSSection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	doc := "# Benchmarks\n\n## Results\n\nr\n\n## Hostile clients\n\nh\n\n## Notes\n\n- n\n"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"## TLS\n\nfirst\n", "## TLS\n\nsecond\n"} {
		if err := putTLSSection(path, s); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "# Benchmarks\n\n## Results\n\nr\n\n## TLS\n\nsecond\n\n## Hostile clients\n\nh\n\n## Notes\n\n- n\n"
	if string(b) != want {
		t.Errorf("got:\n%s\nwant:\n%s", b, want)
	}
	if got := tlsSectionOf(path); got != "## TLS\n\nsecond\n\n" {
		t.Errorf("tlsSectionOf: %q", got)
	}
}
