//go:build linux

package loop

import (
	"context"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"

	gerrors "github.com/panjf2000/gnet/v2/pkg/errors"
	"github.com/panjf2000/gnet/v2/pkg/netpoll"
	"github.com/panjf2000/gnet/v2/pkg/queue"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

// A loop may sleep holding its P only while nothing is in flight off the
// loops: a worker job queued or running says no, and the count returns to
// zero once the jobs are done, also after a job the full queue refused.
func TestHoldPFollowsOffLoopWork(t *testing.T) {
	st := fileStore(t)
	s, err := New(Config{Listen: "127.0.0.1:0", Store: st, Logger: discardLog, EventLoops: 1, Workers: 1, Queue: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.pool.stop(t.Context())
	defer s.relay.Close()
	if !s.holdP() {
		t.Fatal("an idle server does not let its loops keep their P")
	}
	release, running := make(chan struct{}), make(chan struct{})
	if !s.pool.submit(func() { close(running); <-release }) {
		t.Fatal("could not submit")
	}
	<-running
	if !s.pool.submit(func() {}) { // the one queue slot
		t.Fatal("could not queue")
	}
	if s.pool.submit(func() {}) {
		t.Fatal("a full queue took a job")
	}
	if s.holdP() {
		t.Fatal("loops may keep their P while a job runs")
	}
	if got := s.offLoop.Load(); got != 2 {
		t.Fatalf("%d jobs counted in flight, want 2", got)
	}
	close(release)
	testutil.WaitFor(t, "the jobs counted out", s.holdP)
}

// Loops may sleep holding their P only with a P spare beside them: a
// server started with GOMAXPROCS above its loops asks holdP before each
// wait, one with as many loops as Ps never does.
func TestHoldPNeedsSpareP(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(3))
	for _, tc := range []struct {
		loops int
		spare bool
	}{{2, true}, {3, false}} {
		s := startIdle(t, tc.loops)
		if s.spareP != tc.spare {
			t.Errorf("%d loops under GOMAXPROCS 3: spare P %v, want %v", tc.loops, s.spareP, tc.spare)
		}
	}
}

// While the loops sleep holding their P, goroutines on Go's netpoller run
// on the spare P: 200 round trips between two goroutines over loopback
// TCP, each needing the netpoller to wake a reader, all come back.
func TestGoNetBesideHeldLoops(t *testing.T) {
	procs := max(runtime.GOMAXPROCS(0), 2)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
	s := startIdle(t, procs-1)
	if !s.spareP || !s.holdP() {
		t.Fatal("an idle server with a spare P does not let its loops keep theirs")
	}
	a, b := testutil.TCPPair(t)
	go func() {
		buf := make([]byte, 1)
		for {
			if _, err := io.ReadFull(b, buf); err != nil {
				return
			}
			if _, err := b.Write(buf); err != nil {
				return
			}
		}
	}()
	buf := make([]byte, 1)
	for i := range 200 {
		if _, err := a.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(a, buf); err != nil {
			t.Fatal(err)
		}
		if buf[0] != byte(i) {
			t.Fatalf("round trip %d came back as %d", i, buf[0])
		}
	}
}

// startIdle starts a server with the given loops, stopped at the test's end.
func startIdle(t *testing.T, loops int) *Server {
	t.Helper()
	s, err := New(Config{Listen: "127.0.0.1:0", Store: fileStore(t), Logger: discardLog, EventLoops: loops})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	shutdownAtEnd(t, s)
	return s
}

// shutdownAtEnd shuts s down when the test ends.
func shutdownAtEnd(t *testing.T, s *Server) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
}

// A loop holds its P across short gaps, and once its held waits have run
// out netpoll.HoldIdle times in a row (a second with nothing to do) it is
// idle: it waits with its P given up, leaving sysmon nothing to preempt;
// its next event makes it hold again.
func TestIdleLoopGivesUpP(t *testing.T) {
	p, err := netpoll.OpenPoller()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.HoldP = func() bool { return true }
	var mu sync.Mutex
	var waits []bool // held or not, in order
	netpoll.SetWaitHook(func(q *netpoll.Poller, hold bool) {
		if q == p {
			mu.Lock()
			waits = append(waits, hold)
			mu.Unlock()
		}
	})
	defer netpoll.SetWaitHook(nil)
	done := make(chan error, 1)
	go func() {
		done <- p.Polling(func(int, netpoll.IOEvent, netpoll.IOFlags) error { return nil })
	}()
	// index is the position of the first wait with hold as given, from i.
	index := func(from int, hold bool) int {
		mu.Lock()
		defer mu.Unlock()
		for i := from; i < len(waits); i++ {
			if waits[i] == hold {
				return i
			}
		}
		return -1
	}
	wake := func() {
		t.Helper()
		if err := p.Trigger(queue.HighPriority, func(any) error { return nil }, nil); err != nil {
			t.Fatal(err)
		}
	}
	// A loop starts idle; an event makes it hold, until a second of nothing.
	testutil.WaitFor(t, "the loop's first wait", func() bool { return index(0, false) == 0 })
	wake()
	held := 0
	testutil.WaitFor(t, "the loop to hold its P after an event", func() bool { held = index(1, true); return held > 0 })
	idle := 0
	testutil.WaitFor(t, "the loop to go idle", func() bool { idle = index(held, false); return idle > 0 })
	if idle-held < netpoll.HoldIdle {
		t.Fatalf("the loop gave its P up after %d held waits, want at least %d", idle-held, netpoll.HoldIdle)
	}
	wake()
	testutil.WaitFor(t, "the loop to hold its P again after an event", func() bool { return index(idle, true) > 0 })
	if err := p.Trigger(queue.HighPriority, func(any) error { return gerrors.ErrEngineShutdown }, nil); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != gerrors.ErrEngineShutdown {
		t.Fatalf("Polling ended with %v", err)
	}
}
