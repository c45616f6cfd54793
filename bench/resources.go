package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// Resources is one reading of the proxy process (the target's root PID):
// the three figures a hostile scenario must give back once its clients are
// gone.
type Resources struct {
	RSSBytes   int64 `json:"rss_bytes"`  // VmRSS of /proc/PID/status
	FDs        int   `json:"fds"`        // entries of /proc/PID/fd
	Goroutines int   `json:"goroutines"` // go_goroutines from the proxy's /metrics; -1: not a Go target
}

// noGoroutines marks a target whose goroutines are not measured (not a Go
// process, or no metrics listener).
const noGoroutines = -1

// ResourceReader reads a target's Resources now.
type ResourceReader struct {
	PID        int
	MetricsURL string // http://host:port/metrics; "" when the target has none
	client     *http.Client
}

// NewResourceReader reads pid, and goroutines from metricsURL when set.
func NewResourceReader(pid int, metricsURL string) *ResourceReader {
	// No keep-alive: a connection held between scrapes would be one of the
	// proxy's fds, counted in one reading and not the next.
	tr := &http.Transport{DisableKeepAlives: true}
	return &ResourceReader{PID: pid, MetricsURL: metricsURL, client: &http.Client{Transport: tr, Timeout: 5 * time.Second}}
}

// Read takes one reading: fds first, then RSS, then the scrape (whose own
// connection is then no longer counted in the fds).
func (rr *ResourceReader) Read() Resources {
	r := Resources{FDs: countFDs(rr.PID), RSSBytes: vmRSS(rr.PID), Goroutines: noGoroutines}
	if rr.MetricsURL != "" {
		if g, err := rr.goroutines(); err == nil {
			r.Goroutines = g
		}
	}
	return r
}

func (rr *ResourceReader) goroutines() (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rr.MetricsURL, nil)
	if err != nil {
		return 0, err
	}
	resp, err := rr.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("metrics: HTTP %d", resp.StatusCode)
	}
	return scrapeGauge(bufio.NewScanner(resp.Body), "go_goroutines")
}

// scrapeGauge finds an unlabelled sample of name in Prometheus text.
func scrapeGauge(sc *bufio.Scanner, name string) (int, error) {
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || len(rest) == 0 || (rest[0] != ' ' && rest[0] != '\t') {
			continue
		}
		f := strings.Fields(rest)
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		return int(v), nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s: not in the metrics", name)
}

// vmRSS is VmRSS of /proc/PID/status in bytes, 0 when unreadable.
func vmRSS(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	v := findField(strings.NewReader(string(b)), "VmRSS")
	kb, err := strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64)
	if err != nil {
		return 0
	}
	return kb << 10
}

// peakOf is the larger of each figure of a and b.
func peakOf(a, b Resources) Resources {
	return Resources{RSSBytes: max(a.RSSBytes, b.RSSBytes), FDs: max(a.FDs, b.FDs), Goroutines: max(a.Goroutines, b.Goroutines)}
}

// Tolerance is how far a reading may stay above the baseline and still
// count as back. The hostile scenarios use DefaultTolerance.
type Tolerance struct {
	FDs         int     // open fds above the baseline
	Goroutines  int     // goroutines above the baseline
	RSSBytes    int64   // RSS above the baseline: the larger of this …
	RSSFraction float64 // … and this fraction of the baseline
}

// DefaultTolerance is the hostile scenarios' rule for "back to baseline",
// once the clients are gone and within the settle bound:
//   - fds exactly back: every socket the attack made the proxy open is
//     closed (a leaked fd is a leaked socket, and a slot);
//   - goroutines within +2: the scrape's own connection on the metrics
//     server, and one in-flight timer or exit;
//   - RSS within max(16 MiB, 25 %) of the baseline: a Go heap that grew
//     under the attack is only returned to the OS by the scavenger after a
//     GC the idle proxy may not run for minutes, so RSS cannot be held to
//     exactly; a bounded per-session buffer (≤ 1 MiB × the sessions of a
//     default run) stays under it, an unbounded queue (the pong flood's
//     hundreds of MiB) does not.
var DefaultTolerance = Tolerance{FDs: 0, Goroutines: 2, RSSBytes: 16 << 20, RSSFraction: 0.25}

// Exceeded lists each figure of now above before's tolerance, as reasons
// ("fds 120 > baseline 20 + 0"); nil when now is back. Goroutines count only
// when both readings measured them.
func (t Tolerance) Exceeded(before, now Resources) []string {
	var out []string
	if now.FDs > before.FDs+t.FDs {
		out = append(out, fmt.Sprintf("fds %d > baseline %d + %d", now.FDs, before.FDs, t.FDs))
	}
	if before.Goroutines >= 0 && now.Goroutines >= 0 && now.Goroutines > before.Goroutines+t.Goroutines {
		out = append(out, fmt.Sprintf("goroutines %d > baseline %d + %d", now.Goroutines, before.Goroutines, t.Goroutines))
	}
	if slack := t.rssSlack(before.RSSBytes); now.RSSBytes > before.RSSBytes+slack {
		out = append(out, fmt.Sprintf("RSS %s > baseline %s + %s", mib(now.RSSBytes), mib(before.RSSBytes), mib(slack)))
	}
	return out
}

func (t Tolerance) rssSlack(base int64) int64 {
	return max(t.RSSBytes, int64(float64(base)*t.RSSFraction))
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// settleStable is how many consecutive readings in a row must be back
// before the proxy counts as settled (one lucky reading between two
// closes is not enough).
const settleStable = 3

// settle polls read every poll until settleStable readings in a row are
// within tol of before, or bound passes (or ctx ends). It returns the last
// reading, whether it settled, and how long it took.
func settle(ctx context.Context, read func() Resources, before Resources, tol Tolerance, bound, poll time.Duration) (Resources, bool, time.Duration) {
	start := time.Now()
	deadline := start.Add(bound)
	ok := 0
	for {
		now := read()
		if len(tol.Exceeded(before, now)) == 0 {
			ok++
		} else {
			ok = 0
		}
		if ok >= settleStable {
			return now, true, time.Since(start)
		}
		if !time.Now().Before(deadline) {
			return now, false, time.Since(start)
		}
		select {
		case <-ctx.Done():
			return now, false, time.Since(start)
		case <-time.After(poll):
		}
	}
}

// quiesce waits until read's fd count holds still for settleStable
// readings in a row (bounded), and returns the last reading: the baseline
// after the warm-up's sessions closed.
func quiesce(ctx context.Context, read func() Resources, bound, poll time.Duration) Resources {
	deadline := time.Now().Add(bound)
	last := read()
	same := 1
	for same < settleStable && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return last
		case <-time.After(poll):
		}
		now := read()
		if now.FDs == last.FDs && now.Goroutines == last.Goroutines {
			same++
		} else {
			same = 1
		}
		last = now
	}
	return last
}
