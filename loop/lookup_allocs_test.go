//go:build linux

package loop

import (
	"testing"
	"time"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/relay/reuse"
	"github.com/consoleproxy/consoleproxy/relay/tokens"
)

// lookupAllocs bounds the allocations of a handshake's worker step
// (lookupAndGuard) with a store that never blocks and a compute host given
// as an IP address: the result, the reuse guard's claim and release, the
// route's address. A timeout context (context.WithTimeout: the context, its
// timer, its cancel function and their bookkeeping) costs 4 or 5 more, each
// of the lookup's and the resolve's; neither needs one here.
const lookupAllocs = 7

// TestLookupNoTimeoutContext: with the file store (tokens.NonBlocking) and
// a host given as an address, the worker's step makes no timeout context:
// its allocations stay within lookupAllocs. It failed at 16 before (both contexts made).
func TestLookupNoTimeoutContext(t *testing.T) {
	h := tokens.HashToken([]byte("lookup-allocs"))
	st := fileStore(t, testutil.TokenLine("lookup-allocs", "127.0.0.1", 5900))
	if _, ok := any(st).(tokens.NonBlocking); !ok {
		t.Fatal("the file store is not NonBlocking")
	}
	s, err := New(Config{Listen: "127.0.0.1:0", Store: st, Logger: discardLog, EventLoops: 1, HandshakeTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s.cfg.Dial.Timeout = 5 * time.Second // --connect-timeout: Resolve's own bound
	end := func(reuse.Reason) {}
	step := func() {
		res := s.lookupAndGuard(h, "", end)
		if res.result != ResultOK {
			t.Fatalf("lookup: %v (%s)", res.result, res.why)
		}
		res.cleanup()
	}
	step()
	n := testing.AllocsPerRun(200, step)
	t.Logf("lookupAndGuard: %.0f allocations", n)
	if n > lookupAllocs {
		t.Fatalf("lookupAndGuard: %.0f allocations, want at most %d (a timeout context made?)", n, lookupAllocs)
	}
}
