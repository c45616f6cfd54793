//go:build linux

package testutil

import (
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TCPPair is a connected TCP pair on loopback (the dialer's end, then the
// accepted one), both closed when the test ends.
func TCPPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	peer, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	return c, peer
}

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
//
// The port comes from below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range), which the kernel never hands out itself:
// a port picked here cannot be taken meanwhile by an outgoing connection's
// source port or by another process's bind to port 0, the ways a port the
// kernel chose (listen on :0, close) is lost between the pick and the
// server's bind. Each test process walks its own stretch of that range
// (by its PID), so the test binaries `go test ./...` runs side by side do
// not pick the same port either; a port something listens on is skipped.
func PickPort() (int, error) {
	portsOnce.Do(initPorts)
	if portsHigh > portsLow {
		span := portsHigh - portsLow
		for range span {
			p := portsLow + int(portsNext.Add(1)-1)%span
			if ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p))); err == nil {
				ln.Close()
				return p, nil
			}
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// pickFloor is the lowest port PickPort hands out: above the well-known
// ports of the servers the tests run (PostgreSQL 5432, Redis 6379, VNC
// 5900+, Chromium's 9222, …).
const pickFloor = 16384

// pickStretches is how many stretches the range below the ephemeral ports
// is cut into, one per test process by its PID.
const pickStretches = 16

var (
	portsOnce           sync.Once
	portsLow, portsHigh int // this process's stretch, [low, high); empty: the kernel picks
	portsNext           atomic.Int64
)

func initPorts() {
	ephemeral := 32768 // Linux's default lower bound
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				ephemeral = n
			}
		}
	}
	stretch := (ephemeral - pickFloor) / pickStretches
	if stretch < 256 {
		return // too few ports below the ephemeral range: let the kernel pick
	}
	portsLow = pickFloor + os.Getpid()%pickStretches*stretch
	portsHigh = portsLow + stretch
	portsNext.Store(int64(time.Now().UnixNano() % int64(stretch)))
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
