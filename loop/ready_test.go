//go:build linux

package loop

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

// Readiness follows the listener (issue 12, finding 11): once gnet's
// engine has stopped on its own (as it did after one failed accept), Ready
// is false, so /readyz stops sending users to a proxy that no longer
// listens. The engine is stopped underneath the server here, the way gnet
// stops itself.
func TestReadyFollowsEngine(t *testing.T) {
	st := fileStore(t)
	s, err := New(Config{Listen: "127.0.0.1:0", Store: st, Logger: discardLog, EventLoops: 2})
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
