//go:build linux

package relay

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A host socket handed to the relay gets --write-timeout as its
// TCP_USER_TIMEOUT: the kernel drops a peer that acknowledges nothing.
func TestAttachSetsUserTimeout(t *testing.T) {
	r, err := New(Config{Pollers: 1, WriteTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fd, err := Detach(nc.(*net.TCPConn))
	if err != nil {
		t.Fatal(err)
	}
	s := newTestSink(true)
	c := r.Attach(fd, s, -1)
	s.conn = c
	defer c.Close()
	ms, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT)
	if err != nil {
		t.Fatal(err)
	}
	if ms != 3000 {
		t.Fatalf("TCP_USER_TIMEOUT %d ms, want 3000", ms)
	}
}
