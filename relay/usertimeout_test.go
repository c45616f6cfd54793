//go:build linux

package relay

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

// A host socket handed to the relay gets --write-timeout as its
// TCP_USER_TIMEOUT: the kernel drops a peer that acknowledges nothing.
func TestAttachSetsUserTimeout(t *testing.T) {
	r, err := New(Config{Pollers: 1, WriteTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	nc, _ := testutil.TCPPair(t)
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

// A host socket keeps dead hosts from holding a session with keepalive:
// idle and interval from DialConfig.KeepAlive, and the probe count only
// where no TCP_USER_TIMEOUT will decide instead (the kernel's own count
// stays otherwise).
func TestHostKeepalive(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ap := ln.Addr().(*net.TCPAddr).AddrPort()
	kernelCount := func() int {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		n, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPCNT)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}()
	for _, tc := range []struct {
		countProbes bool
		want        int
	}{{true, keepProbes}, {false, kernelCount}} {
		fd, err := connectNonblocking(ap, time.Minute, tc.countProbes)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range []struct {
			name       string
			level, opt int
			want       int
		}{
			{"SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
			{"TCP_KEEPIDLE", unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 60},
			{"TCP_KEEPINTVL", unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 20},
			{"TCP_KEEPCNT", unix.IPPROTO_TCP, unix.TCP_KEEPCNT, tc.want},
		} {
			if v, err := unix.GetsockoptInt(fd, o.level, o.opt); err != nil || v != o.want {
				t.Errorf("countProbes %v: %s = %d (%v), want %d", tc.countProbes, o.name, v, err, o.want)
			}
		}
		_ = unix.Close(fd)
	}
	if kernelCount == keepProbes {
		t.Logf("the kernel's own count is %d too: TCP_KEEPCNT's absence is not told apart", kernelCount)
	}
}
