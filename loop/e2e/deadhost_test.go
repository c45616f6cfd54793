//go:build linux

package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/loop"
)

// A dead compute host holds no worker: with one worker and a minute of
// --connect-timeout, three sessions to a host that never answers the SYN
// wait on a relay poller (consoleproxy_host_handshakes_pending 3), and a
// session to a live host still gets its 101 and relays meanwhile. With the
// dial on the worker, the first dead session would pin the only worker for
// the whole minute.
func TestDeadHostHoldsNoWorker(t *testing.T) {
	dead := testutil.HangingHost(t)
	live := startBackend(t, echo)
	p := startProxy(t, func(cfg *loop.Config) {
		cfg.Workers = 1
		cfg.Dial.Timeout = time.Minute
		cfg.HandshakeTimeout = 2 * time.Minute
	})
	for i := 0; i < 3; i++ {
		c := dialRaw(t, p.addr)
		defer c.Close()
		if _, err := c.Write([]byte(req{protocol: "binary", token: p.mint(int(dead.Port()), nil)}.request(p.addr))); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, "three connects pending on the pollers", func() bool {
		return strings.Contains(metricsText(p), "consoleproxy_host_handshakes_pending 3\n")
	})
	c := open(t, p.addr, req{protocol: "binary", token: p.mint(live.port(), nil)})
	c.send(ws.OpBinary, []byte("alive"))
	if got := c.readData(5); string(got) != "alive" {
		t.Fatalf("echo %q", got)
	}
	if m := metricsText(p); !strings.Contains(m, "consoleproxy_host_handshakes_pending 3\n") {
		t.Fatalf("the dead host's connects ended early:\n%s", grepLines(m, "pending"))
	}
}
