package e2e

import (
	"bytes"
	"context"
	"log/slog"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/consoleproxy/consoleproxy/loop"
)

// okSessions reads consoleproxy_sessions_total{result="ok"} from srv.
func okSessions(t *testing.T, srv *loop.Server) int {
	t.Helper()
	var b bytes.Buffer
	srv.WriteMetrics(&b)
	m := regexp.MustCompile(`(?m)^consoleproxy_sessions_total\{result="ok"\} (\d+)$`).FindSubmatch(b.Bytes())
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// The library side of a binary upgrade, in one process: a server started
// on another's listening sockets (StartInherited, no bind probe) serves
// every one of them, though configured with fewer event loops than there
// are sockets (each SO_REUSEPORT socket has its own accept queue: one
// without a loop would strand its connections), and once the first server
// has stopped accepting, every new connection is the second's.
func TestHandoverInProcess(t *testing.T) {
	const sockets, conns = 4, 200
	b := startBackend(t, echo)
	a := startProxy(t, func(c *loop.Config) { c.EventLoops = sockets })
	toks := make([]string, conns) // one each: a finished session's exclusive claim goes after its close
	for i := range toks {
		toks[i] = a.mint(b.port(), nil)
	}
	fds, err := a.srv.ListenerFDs()
	if err != nil {
		t.Fatal(err)
	}
	if len(fds) != sockets {
		t.Fatalf("%d listening sockets handed over, want %d (one per loop)", len(fds), sockets)
	}
	next, err := loop.New(loop.Config{Listen: a.addr, Store: a.store, Logger: slog.New(slog.NewJSONHandler(a.logs, nil)), EventLoops: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := next.StartInherited(fds); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = next.Shutdown(ctx)
	})
	a.srv.StopAccepting()
	before := okSessions(t, a.srv)
	for i := range conns {
		s, _, err := openUpSession(t, a.addr, toks[i])
		if err != nil {
			t.Fatalf("connection %d after the hand-over: %v", i, err)
		}
		if code, err := s.finish(); err != nil || code != 1000 {
			t.Fatalf("connection %d: close %d, %v", i, code, err)
		}
	}
	if got := okSessions(t, a.srv) - before; got != 0 {
		t.Errorf("the first server took %d sessions after it stopped accepting", got)
	}
	if got := okSessions(t, next); got != conns {
		t.Errorf("the second server took %d sessions, want %d", got, conns)
	}
}
