//go:build linux

package loop

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

// Where the kernel offers the tls ULP, a TCP socket takes it (what kTLS's
// TLS_TX/TLS_RX would be set on); elsewhere the test says why it cannot run.
func TestKernelTLS(t *testing.T) {
	ok, why := KernelTLS()
	if !ok {
		t.Skipf("kernel TLS not available: %s", why)
	}
	c, _ := testutil.TCPPair(t)
	sc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := sc.Control(func(fd uintptr) { serr = unix.SetsockoptString(int(fd), unix.SOL_TCP, unix.TCP_ULP, "tls") }); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatalf("tcp_available_ulp lists tls, yet setting it failed: %v", serr)
	}
}
