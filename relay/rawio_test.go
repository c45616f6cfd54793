//go:build linux

package relay

import (
	"bytes"
	"errors"
	"testing"

	gio "github.com/panjf2000/gnet/v2/pkg/io"
	gnetpoll "github.com/panjf2000/gnet/v2/pkg/netpoll"
	"golang.org/x/sys/unix"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

// The raw calls (gnet's patched pkg/io, and relay's own) behave as
// x/sys/unix's: bytes in order, EAGAIN on an empty non-blocking socket, EOF
// as 0; and a writev of an upload batch's iovecs, at their bound, does not allocate.
func TestRawIO(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	buf := make([]byte, 64)
	if _, err := gio.Read(fds[0], buf); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("read of an empty socket: %v, want EAGAIN", err)
	}
	iov := [][]byte{[]byte("ab"), nil, []byte("cde")}
	if n, err := gio.Writev(fds[1], iov); n != 5 || err != nil {
		t.Fatalf("writev = %d, %v", n, err)
	}
	if n, err := gio.Read(fds[0], buf); err != nil || !bytes.Equal(buf[:n], []byte("abcde")) {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	events := make([]unix.EpollEvent, 4)
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ep)
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fds[0], &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fds[0])}); err != nil {
		t.Fatal(err)
	}
	if n, err := gnetpoll.EpollWaitNow(ep, events); n != 0 || err != nil {
		t.Fatalf("epoll_wait on nothing = %d, %v", n, err)
	}
	if !testutil.Race {
		many := make([][]byte, 68) // an upload batch at its bound (loop.maxBatchIOV)
		for i := range many {
			many[i] = []byte{byte(i)}
		}
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := gio.Writev(fds[1], many); err != nil {
				t.Fatal(err)
			}
			for {
				if n, _ := gio.Read(fds[0], buf); n <= 0 {
					break
				}
			}
		})
		if allocs != 0 {
			t.Errorf("%v allocations per writev of 68 buffers", allocs)
		}
	}
	if n, err := gnetpoll.EpollWaitNow(ep, events); n != 0 || err != nil {
		t.Fatalf("epoll_wait after draining = %d, %v", n, err)
	}
	unix.Close(fds[1])
	if n, err := gnetpoll.EpollWaitNow(ep, events); n != 1 || err != nil {
		t.Fatalf("epoll_wait after the peer closed = %d, %v", n, err)
	}
	if n, err := gio.Read(fds[0], buf); n != 0 || err != nil {
		t.Fatalf("read after the peer closed = %d, %v, want 0 (EOF)", n, err)
	}
}
