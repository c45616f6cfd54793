//go:build linux

package testutil

import (
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// FreeAddr is a loopback address ("127.0.0.1:PORT") nothing listened on
// a moment ago: for a server a test starts by address.
func FreeAddr(t testing.TB) string {
	t.Helper()
	p, err := PickPort()
	if err != nil {
		t.Fatal(err)
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(p)).String()
}

// FreePort is FreeAddr's port.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := PickPort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// PickPort is FreePort for code that has no testing.TB (a server fixture
// started from TestMain): a loopback port nothing listens on right now.
func PickPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Unsent is how many bytes c has queued to send that its peer has not taken
// (SIOCOUTQ): above zero and holding, the writer is pushed back by TCP flow
// control. A condition to poll instead of sleeping "long enough".
func Unsent(t testing.TB, c net.Conn) int {
	t.Helper()
	return sockIoctl(t, c, unix.SIOCOUTQ)
}

// Unread is how many bytes have arrived on c that nobody has read yet
// (SIOCINQ).
func Unread(t testing.TB, c net.Conn) int {
	t.Helper()
	return sockIoctl(t, c, unix.SIOCINQ)
}

// PushedBack reports whether c's writer is held by flow control: its send
// queue (Unsent) holds at least half its send buffer (SO_SNDBUF), which
// only happens when the peer stops taking bytes. The condition to poll for
// "the host is pushed back" instead of sleeping long enough.
func PushedBack(t testing.TB, c net.Conn) bool {
	t.Helper()
	return Unsent(t, c) >= sockOpt(t, c, unix.SO_SNDBUF)/2
}

func sockOpt(t testing.TB, c net.Conn, opt int) int {
	t.Helper()
	var n int
	var oerr error
	control(t, c, func(fd int) { n, oerr = unix.GetsockoptInt(fd, unix.SOL_SOCKET, opt) })
	if oerr != nil {
		t.Fatal(oerr)
	}
	return n
}

func sockIoctl(t testing.TB, c net.Conn, req uint) int {
	t.Helper()
	var n int
	var ierr error
	control(t, c, func(fd int) { n, ierr = unix.IoctlGetInt(fd, req) })
	if ierr != nil {
		t.Fatal(ierr)
	}
	return n
}

// control runs f on c's descriptor.
func control(t testing.TB, c net.Conn, f func(fd int)) {
	t.Helper()
	sc, ok := c.(syscall.Conn)
	if !ok {
		t.Fatalf("%T has no descriptor", c)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.Control(func(fd uintptr) { f(int(fd)) }); err != nil {
		t.Fatal(err)
	}
}

// HangingHost is a loopback listener with a backlog of one that never
// accepts, filled up: Linux drops further SYNs, so a connect to it hangs
// until the connector gives up, like a compute host that is down. It is
// closed at the end of the test.
func HangingHost(tb testing.TB) netip.AddrPort {
	tb.Helper()
	return HangingHostAt(tb, netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), 0))
}

// hangingFill is how many connections fill HangingHost's queue; the dials
// past it hang, so each is bounded by hangingDial.
const (
	hangingFill = 4
	hangingDial = 200 * time.Millisecond
)

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
	for i := 0; i < hangingFill; i++ {
		d := net.Dialer{Timeout: hangingDial}
		if c, err := d.Dial("tcp", ap.String()); err == nil {
			tb.Cleanup(func() { c.Close() })
		}
	}
	return ap
}
