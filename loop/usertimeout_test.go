//go:build linux

package loop

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

// A client's socket gets --write-timeout as its TCP_USER_TIMEOUT (a
// browser that acknowledges nothing is dropped by the kernel) from the
// listener it was accepted on, with no system call per accept: on a new
// listener, and on one handed over by a process with another setting (here
// the first server's 7 s, taken over by one with the timeout off, then one
// with 9 s).
func TestClientUserTimeout(t *testing.T) {
	start := func(wt time.Duration, fds []int) *Server {
		t.Helper()
		s, err := New(Config{Listen: "127.0.0.1:0", Store: fileStore(t), Logger: discardLog, EventLoops: 1, WriteTimeout: wt})
		if err != nil {
			t.Fatal(err)
		}
		if fds == nil {
			err = s.Start()
		} else {
			err = s.StartInherited(fds)
		}
		if err != nil {
			t.Fatal(err)
		}
		shutdownAtEnd(t, s)
		return s
	}
	// accepted is the TCP_USER_TIMEOUT of a connection s accepts.
	accepted := func(s *Server, addr string) int {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var fd int
		testutil.WaitFor(t, "the connection's session", func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			for ss := range s.sessions {
				fd = ss.c.Fd()
				return true
			}
			return false
		})
		ms, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT)
		if err != nil {
			t.Fatal(err)
		}
		return ms
	}
	first := start(7*time.Second, nil)
	addr := first.Addr().String()
	if ms := accepted(first, addr); ms != 7000 {
		t.Fatalf("a new listener's connection: TCP_USER_TIMEOUT %d ms, want 7000", ms)
	}
	for _, tc := range []struct {
		wt   time.Duration
		want int
	}{{-1, 0}, {9 * time.Second, 9000}} {
		fds, err := first.ListenerFDs()
		if err != nil {
			t.Fatal(err)
		}
		next := start(tc.wt, fds)
		first.StopAccepting()
		if ms := accepted(next, addr); ms != tc.want {
			t.Fatalf("write timeout %v on a handed-over listener: TCP_USER_TIMEOUT %d ms, want %d", tc.wt, ms, tc.want)
		}
		first = next
	}
}
