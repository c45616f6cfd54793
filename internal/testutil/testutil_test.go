//go:build linux

package testutil

import (
	"errors"
	"net"
	"strconv"
	"testing"
)

// An absent binary is ErrNotInstalled, and Need skips on it (outside
// make test) with the reason.
func TestNeedSkipsWhenNotInstalled(t *testing.T) {
	_, err := LookBinary("consoleproxy-no-such-server")
	if !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("err %v, want ErrNotInstalled", err)
	}
	t.Setenv(RequireEnv, "")
	var skipped bool
	t.Run("absent", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		NeedBinary(t, "consoleproxy-no-such-server")
		t.Error("NeedBinary returned for an absent binary")
	})
	if !skipped {
		t.Fatal("the test did not skip")
	}
	if p := NeedBinary(t, "sh", "/bin"); p == "" {
		t.Fatal("sh not found")
	}
}

// A writer whose peer reads nothing is pushed back; before it writes, it is
// not.
func TestPushedBack(t *testing.T) {
	c, peer := TCPPair(t)
	if PushedBack(t, c) {
		t.Fatal("pushed back before writing")
	}
	go func() {
		buf := make([]byte, 64<<10)
		for {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	WaitFor(t, "the writer pushed back", func() bool { return PushedBack(t, c) })
	if Unread(t, peer) == 0 {
		t.Fatal("the peer has nothing unread although the writer is pushed back")
	}
}

// Eventually reports a condition that never holds as false once the bound
// passes, and one that holds as true.
func TestEventually(t *testing.T) {
	if Eventually(0, func() bool { return false }) {
		t.Fatal("a false condition held")
	}
	n := 0
	if !Eventually(WaitBound, func() bool { n++; return n == 3 }) {
		t.Fatal("a condition that comes true did not hold")
	}
}

// PickPort hands out ports below the kernel's ephemeral range (which
// neither outgoing connections nor another process's bind to port 0 can
// take meanwhile), a different one each time, each free to listen on.
func TestPickPort(t *testing.T) {
	portsOnce.Do(initPorts)
	if portsHigh <= portsLow {
		t.Skip("too few ports below the ephemeral range here: the kernel picks")
	}
	seen := map[int]bool{}
	for range 50 {
		p, err := PickPort()
		if err != nil {
			t.Fatal(err)
		}
		if p < portsLow || p >= portsHigh || seen[p] {
			t.Fatalf("port %d: want a new one in [%d, %d)", p, portsLow, portsHigh)
		}
		seen[p] = true
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("port %d: %v", p, err)
		}
		ln.Close()
	}
}
