//go:build linux

package loop

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/relay/tokens"
)

// Readiness follows the listener (issue 12, finding 11): once gnet's
// engine has stopped on its own (as it did after one failed accept), Ready
// is false, so /readyz stops sending users to a proxy that no longer
// listens. The engine is stopped underneath the server here, the way gnet
// stops itself.
func TestReadyFollowsEngine(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	path := filepath.Join(t.TempDir(), "tokens.jsonl")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := tokens.OpenFile(tokens.FileConfig{Path: path, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, err := New(Config{Listen: "127.0.0.1:0", Store: st, Logger: log, EventLoops: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if !s.Ready() {
		t.Fatal("not ready after Start")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.eng.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "Ready false after the engine stopped", func() bool { return !s.Ready() })
	if c, err := net.Dial("tcp", s.Addr().String()); err == nil {
		c.Close()
		t.Fatal("the listener still accepts after the engine stopped")
	}
	_ = s.Shutdown(ctx) // returns although the engine is already gone
	if ctx.Err() != nil {
		t.Fatal("Shutdown did not return after the engine had stopped")
	}
}
