// Package testnet holds loopback network fixtures for tests only.
package testnet

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// HangingHost is a loopback listener with a backlog of one that never
// accepts, filled up: Linux drops further SYNs, so a connect to it hangs
// until the connector gives up, like a compute host that is down. It is
// closed at the end of the test.
func HangingHost(tb testing.TB) netip.AddrPort {
	tb.Helper()
	return HangingHostAt(tb, netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), 0))
}

// HangingHostAt is HangingHost on a given IPv4 address and port (0 for any
// free port): a name can then resolve to a dead 127.0.0.2 and a live
// 127.0.0.1 on the same port.
func HangingHostAt(tb testing.TB, at netip.AddrPort) netip.AddrPort {
	tb.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { unix.Close(fd) })
	// As Go's listeners: a socket on the same port that is not listening
	// (TIME_WAIT, another test's connection) does not stand in the way.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		tb.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: at.Addr().As4(), Port: int(at.Port())}); err != nil {
		tb.Fatalf("bind %s: %v", at, err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		tb.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		tb.Fatal(err)
	}
	ap := netip.AddrPortFrom(at.Addr(), uint16(sa.(*unix.SockaddrInet4).Port))
	for i := 0; i < 4; i++ { // fill the queue; the dials past it hang, so they are bounded
		d := net.Dialer{Timeout: 200 * time.Millisecond}
		if c, err := d.Dial("tcp", ap.String()); err == nil {
			tb.Cleanup(func() { c.Close() })
		}
	}
	return ap
}
