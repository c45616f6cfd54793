//go:build linux

package e2e

import (
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

// exitBound is how long the signal tests wait for the process to exit: well
// above --drain-timeout (1 s here) plus the stop bound the binary documents
// (5 s), well below the minute the blocked operations would take.
const exitBound = 20 * time.Second

// waitExit waits up to exitBound for p to exit and returns its status.
func waitExit(t *testing.T, p *proc, why string) error {
	t.Helper()
	begin := time.Now()
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		t.Logf("exited %v after the signal: %v", time.Since(begin).Round(time.Millisecond), err)
		return err
	case <-time.After(exitBound):
		t.Fatalf("no exit %s within %s\n%s", why, exitBound, p.stderr)
	}
	return nil
}

// SIGTERM ends the process within --drain-timeout plus the documented
// bound, whatever a worker is blocked in (issue 12, finding 7a). Here the
// worker is blocked in a connect to a --compute-proxy whose accept queue is
// full (its SYNs go unanswered), with --connect-timeout 60s.
func TestSIGTERMBoundedWithBlockedWorker(t *testing.T) {
	fwd := fullListener(t)
	b := startBackend(t, echo)
	p := startBinary(t, []string{tokenLine("tok-stuck", b.port())}, "--compute-proxy", "http://"+fwd.String(),
		"--connect-timeout", "60s", "--handshake-timeout", "60s", "--drain-timeout", "1s", "--workers", "1")
	c := dialRaw(t, p.addr)
	if _, err := c.Write([]byte(req{token: "tok-stuck"}.request(p.addr))); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the worker's connect to the forward proxy", func() bool { return synSent(t, fwd.Port) })
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if err := waitExit(t, p, "after SIGTERM with a worker blocked"); err != nil {
		t.Fatalf("exit: %v\n%s", err, p.stderr)
	}
}

// SIGHUP while the stores are still opening neither kills the process nor
// is lost: it is applied once started (issue 12, finding 7b). The Redis
// store here answers nothing, so opening it (and the fleet reuse guard on
// it) waits for its ping timeouts.
func TestSIGHUPDuringStartup(t *testing.T) {
	p := execBinary(t, "--token-store", "redis://"+silentListener(t))
	testutil.WaitFor(t, "the store opening", func() bool { return strings.Contains(p.stderr.String(), "token store: redis") })
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	// The listeners are bound early in start-up: wait for its end.
	waitStarted(t, p)
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	defer func() {
		if t.Failed() {
			t.Logf("stderr:\n%s", p.stderr)
		}
	}()
	testutil.WaitFor(t, "the held SIGHUP and the later one applied", func() bool {
		return strings.Count(p.stderr.String(), `"msg":"reloaded"`) >= 2
	})
	if code, _ := httpGet(t, "http://"+p.metrics+"/readyz"); code != 200 {
		t.Fatalf("readyz %d after SIGHUPs\n%s", code, p.stderr)
	}
}

// SIGTERM while the stores are still opening exits cleanly (status 0)
// instead of dying by the signal.
func TestSIGTERMDuringStartup(t *testing.T) {
	p := execBinary(t, "--token-store", "redis://"+silentListener(t), "--drain-timeout", "1s")
	testutil.WaitFor(t, "the store opening", func() bool { return strings.Contains(p.stderr.String(), "token store: redis") })
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if err := waitExit(t, p, "after SIGTERM during start-up"); err != nil {
		t.Fatalf("exit: %v\n%s", err, p.stderr)
	}
}

// execBinary starts consoleproxy with args and does not wait for it.
func execBinary(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{addr: testutil.FreeAddr(t), metrics: testutil.FreeAddr(t), stderr: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(consoleproxyBinary(t), append([]string{"--listen", p.addr, "--metrics-listen", p.metrics, "--log-format", "json"}, args...)...)
	p.cmd.Dir = t.TempDir()
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// waitListening waits until p's metrics listener (started last) answers,
// failing if p exits first.
func waitListening(t testing.TB, p *proc) {
	t.Helper()
	exited := errors.New("exited")
	err := testutil.CheckWithin(exitBound, func() error {
		select {
		case err := <-p.done:
			p.done <- err
			return fmt.Errorf("%w during start-up: %v", exited, err)
		default:
		}
		c, err := net.Dial("tcp", p.metrics)
		if err == nil {
			c.Close()
		}
		return err
	})
	switch {
	case errors.Is(err, exited):
		t.Fatalf("%v\n%s", err, p.stderr)
	case err != nil:
		t.Fatalf("not listening within %s: %v\n%s", exitBound, err, p.stderr)
	}
}

// silentListener accepts connections and never answers; closed at cleanup.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// fullListener is a loopback listener with a backlog of 0 whose accept
// queue is filled and never drained: the kernel drops further SYNs, so a
// connect to it hangs until its timeout.
func fullListener(t *testing.T) *net.TCPAddr {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*unix.SockaddrInet4).Port}
	for i := 0; i < 4; i++ { // the first connect fills the queue; one must then time out
		c, err := net.DialTimeout("tcp", addr.String(), 300*time.Millisecond)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return addr
			}
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Fatalf("the accept queue of %s never filled", addr)
	return nil
}

// synSent reports whether a socket on this host is in SYN_SENT toward
// 127.0.0.1:port.
func synSent(t *testing.T, port int) bool {
	return tcpState(t, fmt.Sprintf("0100007F:%04X", port), 2, "02")
}
