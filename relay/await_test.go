//go:build linux

package relay

import (
	"errors"
	"testing"
	"time"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"golang.org/x/sys/unix"
)

type awaited struct {
	fd  int
	got []byte
	err error
}

func await(r *Relay, fd int, got []byte, n int, deadline time.Time) chan awaited {
	out := make(chan awaited, 1)
	r.await(fd, got, n, deadline, -1, func(fd int, got []byte, err error) { out <- awaited{fd, got, err} })
	return out
}

func recv(t *testing.T, c chan awaited) awaited {
	t.Helper()
	select {
	case a := <-c:
		return a
	case <-time.After(10 * time.Second):
		t.Fatal("await never called done")
		return awaited{}
	}
}

// await hands the socket back once the peer has said n bytes (more than
// one read may bring them), with exactly what was read, bytes already read
// first; the rest stays in the socket for the caller.
func TestAwaitGreeting(t *testing.T) {
	r := newRelay(t, Config{Pollers: 1})
	fd, host := tcpPair(t)
	done := await(r, fd, []byte("R"), 12, time.Now().Add(10*time.Second))
	if _, err := host.Write([]byte("FB 003")); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-done:
		t.Fatalf("done after 7 of 12 bytes: %q", a.got)
	case <-time.After(50 * time.Millisecond): // a wrong implementation would have answered by now
	}
	if n := r.Opening(); n != 1 {
		t.Errorf("Handshaking %d while a greeting is awaited, want 1", n)
	}
	if _, err := host.Write([]byte(".008\nrest")); err != nil {
		t.Fatal(err)
	}
	a := recv(t, done)
	if n := r.Opening(); n != 0 {
		t.Errorf("Handshaking %d once it is in, want 0", n)
	}
	if a.err != nil || a.fd != fd || string(a.got) != "RFB 003.008\n" {
		t.Fatalf("got %d %q %v", a.fd, a.got, a.err)
	}
	defer unix.Close(fd)
	buf := make([]byte, 16)
	n, err := unix.Read(fd, buf)
	if err != nil || string(buf[:n]) != "rest" {
		t.Fatalf("the socket after Await reads %q, %v", buf[:max(n, 0)], err)
	}
}

// A peer that closes, or says nothing until the deadline, gets its socket
// back all the same, with what it said: the caller's protocol judges.
func TestAwaitEndAndDeadline(t *testing.T) {
	r := newRelay(t, Config{Pollers: 1})
	fd, host := tcpPair(t)
	done := await(r, fd, nil, 12, time.Now().Add(10*time.Second))
	if _, err := host.Write([]byte("RFB")); err != nil {
		t.Fatal(err)
	}
	host.Close()
	if a := recv(t, done); a.err != nil || a.fd != fd || string(a.got) != "RFB" {
		t.Fatalf("after the peer closed: %d %q %v", a.fd, a.got, a.err)
	}
	unix.Close(fd)

	fd, _ = tcpPair(t)
	start := time.Now()
	a := recv(t, await(r, fd, nil, 12, start.Add(200*time.Millisecond)))
	if a.err != nil || a.fd != fd || len(a.got) != 0 || time.Now().Before(start.Add(200*time.Millisecond)) {
		t.Fatalf("a silent peer: %d %q %v", a.fd, a.got, a.err)
	}
	unix.Close(fd)

	// Bytes already read that suffice: done at once, on the caller.
	if a := recv(t, await(r, 7, []byte("RFB 003.008\n"), 12, time.Now())); a.fd != 7 || a.err != nil {
		t.Fatalf("enough already read: %d %v", a.fd, a.err)
	}
}

// A relay that closes closes the sockets it still awaits and says so.
func TestAwaitRelayClose(t *testing.T) {
	r, err := New(Config{Pollers: 1})
	if err != nil {
		t.Fatal(err)
	}
	fd, _ := tcpPair(t)
	done := await(r, fd, nil, 12, time.Now().Add(time.Minute))
	testutil.WaitFor(t, "the poller to take the socket", func() bool {
		r.pollers[0].mu.Lock()
		defer r.pollers[0].mu.Unlock()
		return len(r.pollers[0].cmds) == 0
	})
	r.Close()
	a := recv(t, done)
	if a.fd != -1 || !errors.Is(a.err, errShutdown) {
		t.Fatalf("after Close: %d %v", a.fd, a.err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); !errors.Is(err, unix.EBADF) {
		t.Fatalf("the awaited socket is still open (%v)", err)
	}
}
