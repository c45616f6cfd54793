package bench

import (
	"bufio"
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The rule for "back to baseline": fds exact, goroutines +2 (when both
// readings have them), RSS max(16 MiB, 25 %).
func TestToleranceExceeded(t *testing.T) {
	base := Resources{RSSBytes: 20 << 20, FDs: 20, Goroutines: 78}
	big := Resources{RSSBytes: 200 << 20, FDs: 20, Goroutines: 78}
	for _, tc := range []struct {
		name       string
		before     Resources
		now        Resources
		wantReason []string // substrings, one per reason; none: back
	}{
		{"same", base, base, nil},
		{"fd back exactly", base, Resources{RSSBytes: 20 << 20, FDs: 19, Goroutines: 78}, nil},
		{"one fd more", base, Resources{RSSBytes: 20 << 20, FDs: 21, Goroutines: 78}, []string{"fds 21 > baseline 20 + 0"}},
		{"two goroutines more", base, Resources{RSSBytes: 20 << 20, FDs: 20, Goroutines: 80}, nil},
		{"three goroutines more", base, Resources{RSSBytes: 20 << 20, FDs: 20, Goroutines: 81}, []string{"goroutines 81"}},
		{"goroutines not measured", Resources{RSSBytes: 20 << 20, FDs: 20, Goroutines: -1}, Resources{RSSBytes: 20 << 20, FDs: 20, Goroutines: -1}, nil},
		{"goroutines lost", base, Resources{RSSBytes: 20 << 20, FDs: 20, Goroutines: -1}, nil},
		{"RSS +16 MiB", base, Resources{RSSBytes: 36 << 20, FDs: 20, Goroutines: 78}, nil},
		{"RSS +17 MiB", base, Resources{RSSBytes: 37 << 20, FDs: 20, Goroutines: 78}, []string{"RSS 37.0 MiB > baseline 20.0 MiB + 16.0 MiB"}},
		{"RSS +25 % of a large baseline", big, Resources{RSSBytes: 250 << 20, FDs: 20, Goroutines: 78}, nil},
		{"RSS +30 % of a large baseline", big, Resources{RSSBytes: 260 << 20, FDs: 20, Goroutines: 78}, []string{"+ 50.0 MiB"}},
		{"all three", base, Resources{RSSBytes: 900 << 20, FDs: 40, Goroutines: 200}, []string{"fds", "goroutines", "RSS"}},
	} {
		got := DefaultTolerance.Exceeded(tc.before, tc.now)
		if len(got) != len(tc.wantReason) {
			t.Errorf("%s: reasons %q, want %d", tc.name, got, len(tc.wantReason))
			continue
		}
		for i, w := range tc.wantReason {
			if !strings.Contains(got[i], w) {
				t.Errorf("%s: reason %q lacks %q", tc.name, got[i], w)
			}
		}
	}
}

// readings plays a fixed sequence of readings, the last one repeated.
func readings(rs ...Resources) func() Resources {
	var i atomic.Int64
	return func() Resources {
		k := min(int(i.Add(1)-1), len(rs)-1)
		return rs[k]
	}
}

func fds(n int) Resources { return Resources{RSSBytes: 10 << 20, FDs: n, Goroutines: 10} }

// settle waits for three readings in a row back within the tolerance; a
// single lucky reading is not enough, and a proxy that never comes back is
// reported with its last reading.
func TestSettle(t *testing.T) {
	ctx := context.Background()
	before := fds(20)
	after, ok, _ := settle(ctx, readings(fds(60), fds(40), fds(20), fds(25), fds(20), fds(20), fds(20)), before, DefaultTolerance, time.Minute, 0)
	if !ok || after.FDs != 20 {
		t.Errorf("settle: %v %v, want back at 20 fds", after, ok)
	}
	// The sequence ends the wait once played whole (a time budget would
	// depend on how fast a loaded machine gets through it).
	seqCtx, done := context.WithCancel(ctx)
	defer done()
	play := readings(fds(60), fds(20), fds(20), fds(30), fds(20), fds(20), fds(21))
	n := 0
	seq := func() Resources {
		if n++; n == 7 {
			done()
		}
		return play()
	}
	after, ok, _ = settle(seqCtx, seq, before, DefaultTolerance, time.Minute, time.Millisecond)
	if ok || after.FDs != 21 {
		t.Errorf("never three in a row: %v %v, want not settled at 21 fds", after, ok)
	}
	after, ok, _ = settle(ctx, readings(fds(25)), before, DefaultTolerance, 20*time.Millisecond, time.Millisecond)
	if ok || after.FDs != 25 {
		t.Errorf("a leak: %v %v, want not settled at 25", after, ok)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, ok, _ := settle(cctx, readings(fds(25)), before, DefaultTolerance, time.Hour, time.Hour); ok {
		t.Error("a cancelled settle reported the proxy back")
	}
}

// quiesce takes the baseline once the fds hold still.
func TestQuiesce(t *testing.T) {
	got := quiesce(context.Background(), readings(fds(30), fds(24), fds(22), fds(20), fds(20), fds(20)), time.Minute, 0)
	if got.FDs != 20 {
		t.Fatalf("baseline %d fds, want 20 (the first value read three times running)", got.FDs)
	}
}

func TestPeakOf(t *testing.T) {
	p := peakOf(Resources{RSSBytes: 5, FDs: 9, Goroutines: -1}, Resources{RSSBytes: 7, FDs: 3, Goroutines: -1})
	if p != (Resources{RSSBytes: 7, FDs: 9, Goroutines: -1}) {
		t.Fatalf("peak %+v", p)
	}
}

func TestScrapeGauge(t *testing.T) {
	text := "# HELP go_goroutines_total x\ngo_goroutines_total 5\ngo_goroutines{x=\"y\"} 3\ngo_goroutines 78\nprocess_fds 9\n"
	g, err := scrapeGauge(bufio.NewScanner(strings.NewReader(text)), "go_goroutines")
	if err != nil || g != 78 {
		t.Fatalf("go_goroutines %d, %v; want 78", g, err)
	}
	if _, err := scrapeGauge(bufio.NewScanner(strings.NewReader("process_fds 9\n")), "go_goroutines"); err == nil {
		t.Fatal("a missing gauge read as a value")
	}
}

// TestVMRSS reads this process.
func TestVMRSS(t *testing.T) {
	if rss := vmRSS(os.Getpid()); rss < 1<<20 {
		t.Fatalf("VmRSS of this test %d bytes", rss)
	}
	if rss := vmRSS(-1); rss != 0 {
		t.Fatalf("VmRSS of no process %d", rss)
	}
}

// feedAll feeds p to a fresh check in random chunks; the check's verdict.
func feedAll(p []byte, rng *rand.Rand) *streamCheck {
	var sc streamCheck
	for len(p) > 0 {
		k := 1 + rng.IntN(min(len(p), 97))
		sc.feed(p[:k])
		p = p[k:]
	}
	return &sc
}

// The corruption check: any prefix of a session's pattern passes, however
// it is chunked; masked bytes, a stretch relayed twice, another session's
// bytes, a byte changed or an impossible session id fail.
func TestStreamCheck(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const id = 4242
	stream := make([]byte, 10_000)
	fillPattern(stream, id, 0)
	if want := appendPattern(nil, id, 0, len(stream)); !bytes.Equal(stream, want) {
		t.Fatal("fillPattern and appendPattern disagree")
	}
	part := make([]byte, 100)
	fillPattern(part, id, 1234)
	if !bytes.Equal(part, stream[1234:1334]) {
		t.Fatal("fillPattern from an offset is not the stream's slice")
	}
	for _, n := range []int{0, 3, 4, 5, 8, 13, 9999, 10_000} {
		if sc := feedAll(stream[:n], rng); sc.bad || sc.n != int64(n) {
			t.Errorf("prefix of %d bytes: bad %v (%s), checked %d", n, sc.bad, sc.detail, sc.n)
		}
	}
	masked := append([]byte(nil), stream[:200]...)
	maskBytes(masked[16:], 0)
	other := append(append([]byte(nil), stream[:80]...), appendPattern(nil, id+1, 80, 80)...)
	changed := append([]byte(nil), stream[:300]...)
	changed[257] ^= 1
	for name, bad := range map[string][]byte{
		"masked after 16 bytes":    masked,
		"masked from the start":    func() []byte { b := append([]byte(nil), stream[:64]...); maskBytes(b, 0); return b }(),
		"a stretch relayed twice":  append(append([]byte(nil), stream[:96]...), stream[64:200]...),
		"another session's bytes":  other,
		"one byte changed":         changed,
		"session 0":                appendPattern(nil, 0, 0, 16),
		"a session past the limit": appendPattern(nil, maxSessionID, 0, 16),
	} {
		sc := feedAll(bad, rng)
		if !sc.bad || sc.detail == "" {
			t.Errorf("%s: not reported", name)
		}
	}
	masked = append([]byte(nil), stream[:8]...)
	maskBytes(masked, 0)
	if sc := feedAll(masked, rng); !strings.Contains(sc.detail, "session 4242's bytes, still masked") {
		t.Errorf("masked from the start: %q does not name the session", sc.detail)
	}
}

// The backend's check log: a second host connection naming a session
// already seen is corruption, and only the first few are described.
func TestCheckLog(t *testing.T) {
	var l checkLog
	a, b := &streamCheck{id: 7}, &streamCheck{id: 7}
	l.claim(a)
	l.claim(&streamCheck{id: 8})
	if bad := l.bad; bad != 0 || a.bad {
		t.Fatalf("distinct sessions flagged: %d", bad)
	}
	l.claim(b)
	if l.bad != 1 || !b.bad || !strings.Contains(l.details[0], "session 7") {
		t.Fatalf("a session on two host connections: bad %d, %q", l.bad, l.details)
	}
	for range 10 {
		l.corrupt("x")
	}
	if l.bad != 11 || len(l.details) != maxCorruptDetails {
		t.Fatalf("bad %d, %d details; want 11 and %d", l.bad, len(l.details), maxCorruptDetails)
	}
}

// Frames the hostile clients write: payload accounting, frame ends, and
// the close a watcher must notice even split across reads.
func TestHostileFrames(t *testing.T) {
	var buf []byte
	buf = appendFrame(buf, 2, []byte("ab"))
	buf = appendFrame(buf, 9, []byte("ping"))
	buf = appendFrame(buf, 2, make([]byte, 300))
	if got := payloadIn(buf, len(buf)); got != 302 {
		t.Fatalf("payload %d, want 302 (pings excluded)", got)
	}
	if got := payloadIn(buf, 7); got != 1 {
		t.Fatalf("payload in the first 7 bytes %d, want 1", got)
	}
	if got := frameEnd(buf, 7); got != 8 {
		t.Fatalf("frame end at byte 7: %d, want 8", got)
	}
	if got := frameEnd(buf, 8); got != 8 {
		t.Fatalf("frame end at a boundary: %d, want 8", got)
	}
	if got := frameEnd(buf, 19); got != len(buf) {
		t.Fatalf("frame end inside the long frame: %d, want %d", got, len(buf))
	}
	sb, pay := stormBuf(nil, true, 9, 0, 4)
	if pay != 6 || len(sb) != 4*6+6 || payloadIn(sb, len(sb)) != 6 {
		t.Fatalf("storm buffer: %d payload bytes in %d", pay, len(sb))
	}
	server := append([]byte{0x82, 3, 'x', 'y', 'z', 0x8a, 0}, 0x88, 2, 0x03, 0xf3)
	for split := 1; split < len(server); split++ {
		var w frameWatch
		_, done1 := w.feed(server[:split])
		code, done := w.feed(server[split:])
		if done1 || !done || code != 1011 {
			t.Fatalf("split at %d: early %v, done %v, code %d; want the close 1011 at the end", split, done1, done, code)
		}
	}
}

// sample builds a soak reading.
func sample(sec float64, rssMiB int64, fds, g int) SoakSample {
	return SoakSample{Seconds: sec, Res: Resources{RSSBytes: rssMiB << 20, FDs: fds, Goroutines: g}}
}

// The drift rule compares floors: spikes pass, a rising floor fails, and a
// run too short to have a reference window says so.
func TestDriftRule(t *testing.T) {
	rule := soakDrift(4) // fds +10, goroutines +4, RSS max(16 MiB, 10 %)
	var flat, leak, spikyEnd []SoakSample
	for s := 0; s <= 600; s++ {
		spike := s%25 < 3 // an attack every 25 s
		rss, fd, g := int64(30), 120, 80
		if spike {
			rss, fd, g = 300, 400, 300
		}
		flat = append(flat, sample(float64(s), rss, fd, g))
		leak = append(leak, sample(float64(s), rss+int64(s/10), fd+s/20, g))
		if s > 450 && spike {
			rss = 900
		}
		spikyEnd = append(spikyEnd, sample(float64(s), rss, fd, g))
	}
	if rep := rule.Check(flat, 30); len(rep.Failures) != 0 || rep.RefFloor.FDs != 120 || rep.LastFloor.FDs != 120 {
		t.Errorf("flat with spikes: %q, floors %+v %+v", rep.Failures, rep.RefFloor, rep.LastFloor)
	}
	if rep := rule.Check(spikyEnd, 30); len(rep.Failures) != 0 {
		t.Errorf("bigger spikes at the end, same floor: %q", rep.Failures)
	}
	rep := rule.Check(leak, 30)
	if len(rep.Failures) != 2 || !strings.Contains(rep.Failures[0], "fds") || !strings.Contains(rep.Failures[1], "RSS") {
		t.Errorf("a leak of one fd per 20 s and 1 MiB per 10 s: %q", rep.Failures)
	}
	if rep.RefStart != 150 || rep.LastStart != 450 || rep.End != 600 {
		t.Errorf("windows %v %v %v, want 150 450 600", rep.RefStart, rep.LastStart, rep.End)
	}
	if rep := rule.Check(flat, 200); rep.RefStart != 200 || len(rep.Failures) != 0 {
		t.Errorf("a warm-up longer than the first quarter: reference from %v (%q)", rep.RefStart, rep.Failures)
	}
	for name, warm := range map[string]float64{"the first pass ended in the last quarter": 500, "no complete pass": 0} {
		if rep := rule.Check(flat, warm); len(rep.Failures) != 1 || !strings.Contains(rep.Failures[0], "too short") {
			t.Errorf("%s: %q", name, rep.Failures)
		}
	}
	if rep := rule.Check(nil, 10); len(rep.Failures) != 1 {
		t.Errorf("no readings: %q", rep.Failures)
	}
}

// The soak's plot and CSV are written from a report.
func TestSoakOutputs(t *testing.T) {
	dir := t.TempDir()
	rep := &SoakReport{Target: "consoleproxy"}
	csv, err := newSoakCSV(filepath.Join(dir, "soak.csv"))
	if err != nil {
		t.Fatal(err)
	}
	for s := 0; s <= 60; s++ {
		smp := sample(float64(s), 20+int64(s%7), 120+s%5, 78)
		smp.Step = "pong-flood"
		rep.Samples = append(rep.Samples, smp)
		csv.write(smp)
	}
	if err := csv.close(); err != nil {
		t.Fatal(err)
	}
	rep.Drift = soakDrift(4).Check(rep.Samples, 20)
	if err := plotSoak(filepath.Join(dir, "soak.png"), rep); err != nil {
		t.Fatal(err)
	}
	png, _ := os.ReadFile(filepath.Join(dir, "soak.png"))
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatal("soak.png is not a PNG")
	}
	lines := strings.Split(strings.TrimSpace(string(mustRead(t, filepath.Join(dir, "soak.csv")))), "\n")
	if len(lines) != 62 || lines[0] != "seconds,rss_bytes,fds,goroutines,step" || lines[1] != "0.0,20971520,120,78,pong-flood" {
		t.Fatalf("soak.csv: %d lines, %q %q", len(lines), lines[0], lines[1])
	}
	var b strings.Builder
	if err := WriteSoakSummary(&b, rep); err != nil || !strings.Contains(b.String(), "soak: PASS") {
		t.Fatalf("summary %q, %v", b.String(), err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
