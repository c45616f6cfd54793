//go:build linux

package relay

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/valyala/bytebufferpool"
	"golang.org/x/sys/unix"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

// Driven pollers (Config.Driven) run no goroutine: the caller polls each
// one's descriptor and calls Poll, as consoleproxy's event loops do. The
// relay's tests that need no Close of their own run again that way: data
// both ways, pushback, held-back writes, the VeNCrypt TLS leg, greetings,
// connects and CONNECT exchanges, and the deadlines, which a driven poller
// keeps with its timerfd (nothing else would wake its driver).
func TestDriven(t *testing.T) {
	tests := map[string]func(*testing.T){
		"DataThenEOF": TestDataThenEOF, "BackpressurePausesHost": TestBackpressurePausesHost,
		"WriteHeldBackUntilHostReads": TestWriteHeldBackUntilHostReads, "CloseReleasesSocket": TestCloseReleasesSocket,
		"TLSLegBothWays": TestTLSLegBothWays, "TLSLegBackpressure": TestTLSLegBackpressure,
		"TLSLegHeldBackAndCloseNotify": TestTLSLegHeldBackAndCloseNotify, "TLSLegClose": TestTLSLegClose,
		"TLSLegWriteTimeout": TestTLSLegWriteTimeout, "TLSLegBadRecord": TestTLSLegBadRecord,
		"AwaitGreeting": TestAwaitGreeting, "AwaitEndAndDeadline": TestAwaitEndAndDeadline,
		"ConnectOnPoller": TestConnectOnPoller, "ConnectOnPollerFails": TestConnectOnPollerFails,
		"ConnectTriesAddressesInTurn": TestConnectTriesAddressesInTurn,
		"OpenNamesTheStep":            TestOpenNamesTheStep, "OpenAccessPath": TestOpenAccessPath, "OpenSecurer": TestOpenSecurer,
		"Handshake": TestHandshake, "HandshakeChain": TestHandshakeChain,
	}
	testDriven = true
	defer func() { testDriven = false }()
	for name, f := range tests {
		t.Run(name, f)
	}
}

// newUndriven is a relay of n driven pollers that nothing drives yet: the
// test polls them itself, or has some driven (driveFor). Closed at the end.
func newUndriven(t *testing.T, n int) *Relay {
	t.Helper()
	r, err := New(Config{Pollers: n, Driven: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// A driven poller's deadline wakes its driver: the timerfd is armed for the
// earliest one and makes the descriptor readable when it passes, and an
// earlier deadline re-arms it while a later one leaves it.
func TestDrivenTimer(t *testing.T) {
	r := newUndriven(t, 1)
	p := r.pollers[0]
	readable := func() bool {
		n, _ := pollOnce(p.Fd(), 0)
		return n > 0
	}
	if readable() {
		t.Fatal("readable with nothing to do")
	}
	p.arm(60_000)
	at := p.armedAt
	p.arm(120_000) // later: left as it is
	if p.armedAt != at {
		t.Fatal("a later deadline re-armed the timer")
	}
	p.arm(1) // earlier: re-armed
	if !p.armedAt.Before(at) {
		t.Fatal("an earlier deadline did not re-arm the timer")
	}
	testutil.WaitFor(t, "the armed timer to make the poller's descriptor readable", readable)
	p.Poll() // reads the timerfd
	if !p.armedAt.IsZero() || readable() {
		t.Fatal("still armed or readable after the timer fired and was read")
	}
}

func pollOnce(fd, ms int) (int, error) {
	return unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, ms)
}

// Open runs its steps on the poller Target.Poller names, and Attach puts
// the socket on the poller it is given: with two driven pollers
// of which only the second is polled, a connect and a host's data reach
// their callbacks only if they went there (on the first they would wait
// forever).
func TestDrivenAffinity(t *testing.T) {
	r := newUndriven(t, 2)
	driveFor(t, r, r.pollers[1])
	ln := listen(t)
	serveOnce(t, ln, func(c net.Conn) { _, _ = c.Write([]byte("hello")); _, _ = io.Copy(io.Discard, c) })
	tg := hostAt(t, ln)
	tg.Poller, tg.Deadline = 1, time.Now().Add(5*time.Second)
	opened := make(chan Opened, 1)
	if err := r.Open(t.Context(), tg, func(o Opened, err error) {
		if err != nil {
			t.Error(err)
		}
		opened <- o
	}); err != nil {
		t.Fatal(err)
	}
	var o Opened
	select {
	case o = <-opened:
	case <-time.After(testutil.WaitBound):
		t.Fatal("the connect never completed: not on the driven poller")
	}
	if o.Fd < 0 {
		t.Fatal("no socket")
	}
	s := newTestSink(true)
	s.conn = r.Attach(o.Fd, s, 1) // the relay's from here: r.Close closes it
	s.conn.Start()
	testutil.WaitFor(t, "the host's bytes through poller 1", func() bool { return string(s.received()) == "hello" })
}

// onDriverSink closes its Conn from inside HostData, on the driver's
// goroutine inside Poll, and notes how many commands were queued then.
type onDriverSink struct {
	*testSink
	p      *Poller
	queued int
}

func (s *onDriverSink) HostData(b *bytebufferpool.ByteBuffer, n int) {
	s.testSink.HostData(b, n)
	s.conn.CloseOnDriver()
	s.queued = len(s.p.cmds)
}

// A caller on the goroutine that drives a poller (the test, which polls it
// itself) has its commands applied at once: Open's connect and Start's
// registration are in place when the call returns, no command is queued and
// no eventfd written, and the connect's completion comes inside Poll
// (Opened.Polled). A close of the socket Poll is handling, from inside its
// callback, is queued instead and runs in the driver's next Poll; outside
// Poll a close is at once. Through the command queue (Open without
// OnDriver, Start), the same steps each leave a command for Poll.
func TestOnDriver(t *testing.T) {
	r := newUndriven(t, 1)
	p := r.pollers[0]
	pollUntil := func(what string, done func() bool) { // the test drives p between looks
		t.Helper()
		testutil.WaitFor(t, what, func() bool {
			if n, _ := pollOnce(p.Fd(), 10); n > 0 {
				p.Poll()
			}
			return done()
		})
	}
	open := func(onDriver bool, answer func(net.Conn)) (Opened, int) {
		t.Helper()
		ln := listen(t)
		serveOnce(t, ln, answer)
		tg := hostAt(t, ln)
		tg.Poller, tg.OnDriver, tg.Deadline = 0, onDriver, time.Now().Add(5*time.Second)
		var o *Opened
		if err := r.Open(t.Context(), tg, func(got Opened, err error) {
			if err != nil {
				t.Error(err)
			}
			o = &got
		}); err != nil {
			t.Fatal(err)
		}
		queued := len(p.cmds)
		pollUntil("the connect's completion", func() bool { return o != nil })
		return *o, queued
	}
	hold := make(chan struct{})
	defer close(hold)

	// Through the queue: one command for the open, one for the start.
	o, queued := open(false, func(c net.Conn) { _, _ = c.Write([]byte("a")); <-hold })
	if queued != 1 || !o.Polled {
		t.Fatalf("open through the queue: %d commands queued, Polled %v; want 1, true", queued, o.Polled)
	}
	s := newTestSink(true)
	s.conn = r.Attach(o.Fd, s, 0)
	s.conn.Start()
	if len(p.cmds) != 1 {
		t.Fatalf("Start queued %d commands, want 1", len(p.cmds))
	}
	pollUntil("the host's byte", func() bool { return string(s.received()) == "a" })
	s.conn.CloseOnDriver() // outside Poll: at once
	if len(p.cmds) != 0 || p.conns.get(o.Fd) != nil {
		t.Fatalf("CloseOnDriver outside Poll: %d commands queued, socket registered %v", len(p.cmds), p.conns.get(o.Fd) != nil)
	}

	// On the driver: nothing queued, the connect in place at once.
	o, queued = open(true, func(c net.Conn) { _, _ = c.Write([]byte("b")); <-hold })
	if queued != 0 || !o.Polled {
		t.Fatalf("open on the driver: %d commands queued, Polled %v; want 0, true", queued, o.Polled)
	}
	ds := &onDriverSink{testSink: newTestSink(true), p: p}
	ds.conn = r.Attach(o.Fd, ds, 0)
	ds.conn.StartOnDriver()
	if len(p.cmds) != 0 || p.conns.get(o.Fd) != ds.conn {
		t.Fatalf("StartOnDriver: %d commands queued, socket registered %v", len(p.cmds), p.conns.get(o.Fd) == ds.conn)
	}
	pollUntil("the host's byte", func() bool { return string(ds.received()) == "b" })
	if ds.queued != 1 {
		t.Fatalf("CloseOnDriver inside Poll: %d commands queued, want 1", ds.queued)
	}
	pollUntil("the queued close", func() bool { return p.conns.get(o.Fd) == nil })
}
