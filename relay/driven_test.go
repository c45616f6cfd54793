//go:build linux

package relay

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
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
