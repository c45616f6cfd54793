package loop

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// Where the kernel offers the tls ULP, a TCP socket takes it (what kTLS's
// TLS_TX/TLS_RX would be set on); elsewhere the test says why it cannot run.
func TestKernelTLS(t *testing.T) {
	ok, why := KernelTLS()
	if !ok {
		t.Skipf("kernel TLS not available: %s", why)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
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
