package tokens

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

// TestMain fails the run if a watcher or pruner goroutine, or a database
// pool, outlives the tests; it stops the shared database servers.
func TestMain(m *testing.M) {
	code := m.Run()
	stopServers()
	stopRedis()
	if code == 0 {
		if leaked := waitNoGoroutine("tokens.(*FileStore).watch", "tokens.(*Embedded).pruneLoop",
			"database/sql.(*DB).connectionOpener", "tokens.(*RedisGuard).run"); leaked != "" {
			fmt.Fprintln(os.Stderr, "goroutine left behind:", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// waitNoGoroutine polls the goroutine dump until none of names appears in
// it; it returns the first name still present after the deadline.
func waitNoGoroutine(names ...string) string {
	found := ""
	testutil.Eventually(5*time.Second, func() bool {
		buf := make([]byte, 1<<20)
		dump := string(buf[:runtime.Stack(buf, true)])
		found = ""
		for _, n := range names {
			if strings.Contains(dump, n) {
				found = n
			}
		}
		return found == ""
	})
	return found
}

// fakeClock is an injected clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// logBuffer captures a logger's JSON output; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// count returns how many log lines contain s.
func (l *logBuffer) count(s string) int {
	n := 0
	for _, line := range strings.Split(l.String(), "\n") {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

func newLog() (*slog.Logger, *logBuffer) {
	lb := &logBuffer{}
	return slog.New(slog.NewJSONHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

// line returns one valid JSON Lines record for token with the given expiry.
func line(token, host string, expires int64) string {
	return fmt.Sprintf(`{"token_hash":%q,"console_type":"novnc","host":%q,"port":5900,`+
		`"internal_access_path":null,"instance_uuid":"6f5b8a3c-1e2d-4c5b-9a8f-0123456789ab",`+
		`"access_url_base":"https://console.example.com:6080/vnc_lite.html","expires":%d}`,
		HashToken([]byte(token)).Hex(), host, expires)
}
