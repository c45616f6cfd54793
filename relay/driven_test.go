//go:build linux

package relay

import (
	"io"
	"net"
	"testing"
	"time"

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

// A driven poller's deadline wakes its driver: the timerfd is armed for the
// earliest one and makes the descriptor readable when it passes, and an
// earlier deadline re-arms it while a later one leaves it.
func TestDrivenTimer(t *testing.T) {
	r, err := New(Config{Pollers: 1, Driven: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
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
	deadline := time.Now().Add(10 * time.Second)
	for !readable() {
		if time.Now().After(deadline) {
			t.Fatal("the armed timer never made the poller's descriptor readable")
		}
		time.Sleep(time.Millisecond)
	}
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
	r, err := New(Config{Pollers: 2, Driven: true})
	if err != nil {
		t.Fatal(err)
	}
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
