//go:build linux

package relay

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

type openResult struct {
	o   Opened
	err error
}

// openTarget runs Open on t (5 s from now unless t has a deadline) and
// waits for its outcome: the synchronous error, or done's. A socket handed
// back is closed at the end of the test.
func openTarget(t *testing.T, r *Relay, tg Target) openResult {
	t.Helper()
	if tg.Deadline.IsZero() {
		tg.Deadline = time.Now().Add(5 * time.Second)
	}
	res := make(chan openResult, 1)
	if err := r.Open(context.Background(), tg, func(o Opened, err error) { res <- openResult{o, err} }); err != nil {
		return openResult{Opened{Fd: -1}, err}
	}
	select {
	case out := <-res:
		if out.o.Fd >= 0 {
			t.Cleanup(func() { unix.Close(out.o.Fd) })
		}
		return out
	case <-time.After(10 * time.Second):
		t.Fatal("Open never called done")
		return openResult{}
	}
}

// hostAt is a Target for a loopback listener's address.
func hostAt(t *testing.T, ln net.Listener) Target {
	t.Helper()
	ap := netip.MustParseAddrPort(ln.Addr().String())
	return Target{Host: ap.Addr().String(), Port: int(ap.Port()), Dial: DialConfig{Timeout: 5 * time.Second}}
}

// serveOnce accepts one connection on ln and plays answer on it.
func serveOnce(t *testing.T, ln net.Listener, answer func(c net.Conn)) {
	t.Helper()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		answer(c)
	}()
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// Each way Open fails names its step (and whether the forward proxy was the
// peer), so the caller's result and log line say which one.
func TestOpenNamesTheStep(t *testing.T) {
	r := newRelay(t, Config{Pollers: 1})
	bad := "/a b"
	path := "/console?token=x"

	// Check: a path that could inject bytes opens no socket.
	ln := listenCounting(t, "127.0.0.1:0")
	tg := Target{Host: "127.0.0.1", Port: int(ln.addrPort().Port()), AccessPath: &bad}
	if err := tg.Check(); !errors.Is(err, ErrBadAccessPath) {
		t.Errorf("Check of %q: %v, want ErrBadAccessPath", bad, err)
	}
	out := openTarget(t, r, tg)
	var oe *OpenError
	if !errors.As(out.err, &oe) || oe.Step != StepResolve || !errors.Is(out.err, ErrBadAccessPath) {
		t.Errorf("Open with a bad path: %v, want StepResolve ErrBadAccessPath", out.err)
	}
	// The allow-list: refused before any socket.
	tg = Target{Host: "127.0.0.1", Port: int(ln.addrPort().Port()),
		Dial: DialConfig{Allowed: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}
	out = openTarget(t, r, tg)
	if !errors.As(out.err, &oe) || oe.Step != StepResolve || !errors.Is(out.err, ErrTargetRefused) {
		t.Errorf("Open outside Allowed: %v, want StepResolve ErrTargetRefused", out.err)
	}
	// A deadline already past: no connect.
	tg = Target{Host: "127.0.0.1", Port: int(ln.addrPort().Port()), Deadline: time.Now().Add(-time.Second)}
	out = openTarget(t, r, tg)
	if !errors.As(out.err, &oe) || oe.Step != StepConnect || oe.Proxy || !errors.Is(out.err, ErrUnreachable) {
		t.Errorf("Open past its deadline: %v, want StepConnect ErrUnreachable", out.err)
	}
	if n := ln.connectsMade(t); n != 0 {
		t.Errorf("%d connects for targets refused before the connect, want 0", n)
	}

	// The connect: nothing listens.
	dead := listen(t)
	tg = hostAt(t, dead)
	dead.Close()
	out = openTarget(t, r, tg)
	if !errors.As(out.err, &oe) || oe.Step != StepConnect || oe.Proxy || !errors.Is(out.err, ErrUnreachable) || out.o.Fd != -1 {
		t.Errorf("Open of a closed port: %+v, want StepConnect ErrUnreachable", out)
	}

	// internal_access_path's CONNECT, refused by the host.
	host := listen(t)
	serveOnce(t, host, func(c net.Conn) {
		_, _ = io.ReadFull(c, make([]byte, 4))
		_, _ = io.WriteString(c, "HTTP/1.1 403 Forbidden\r\n\r\n")
	})
	tg = hostAt(t, host)
	tg.AccessPath = &path
	out = openTarget(t, r, tg)
	if !errors.As(out.err, &oe) || oe.Step != StepCONNECT || oe.Proxy || !errors.Is(out.err, ErrConnectRefused) {
		t.Errorf("Open with a refused CONNECT: %v, want StepCONNECT ErrConnectRefused", out.err)
	}

	// The forward proxy's CONNECT, refused by the proxy.
	proxy := listen(t)
	serveOnce(t, proxy, func(c net.Conn) {
		_, _ = io.ReadFull(c, make([]byte, 4))
		_, _ = io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
	})
	fp, err := ParseForwardProxy("http://"+proxy.Addr().String(), "")
	if err != nil {
		t.Fatal(err)
	}
	tg = Target{Host: "10.1.2.3", Port: 5900, AccessPath: &path, Dial: DialConfig{Timeout: 5 * time.Second, Proxy: fp}}
	out = openTarget(t, r, tg)
	if !errors.As(out.err, &oe) || oe.Step != StepProxyCONNECT || !oe.Proxy || !errors.Is(out.err, ErrConnectRefused) {
		t.Errorf("Open through a refusing forward proxy: %v, want StepProxyCONNECT ErrConnectRefused", out.err)
	}
}

// Open through internal_access_path hands back the socket and the console
// bytes that came with the CONNECT answer.
func TestOpenAccessPath(t *testing.T) {
	r := newRelay(t, Config{Pollers: 1})
	path := "/console?token=x"
	host := listen(t)
	got := make(chan string, 1)
	tg := hostAt(t, host)
	tg.AccessPath = &path
	req, err := AppendConnect(nil, path, tg.Host, tg.Port)
	if err != nil {
		t.Fatal(err)
	}
	serveOnce(t, host, func(c net.Conn) {
		b := make([]byte, len(req))
		_, _ = io.ReadFull(c, b)
		got <- string(b)
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\nRFB 003.008\n")
		_, _ = io.ReadAll(c)
	})
	out := openTarget(t, r, tg)
	if out.err != nil || out.o.Fd < 0 || string(out.o.First) != "RFB 003.008\n" || out.o.Secured || out.o.TLS != nil {
		t.Fatalf("Open: %+v", out)
	}
	if s := <-got; s != string(req) {
		t.Errorf("the host got %q, want %q", s, req)
	}
}

// fakeSecurer records what Open hands it and answers with err.
type fakeSecurer struct {
	greeting chan string
	err      error
}

func (f *fakeSecurer) GreetingLen() int { return 12 }

func (f *fakeSecurer) Secure(fd int, first []byte, host string, _ time.Time, done func(int, *TLSClient, error)) {
	f.greeting <- host + " " + string(first)
	if f.err != nil {
		unix.Close(fd)
		done(-1, nil, f.err)
		return
	}
	done(fd, nil, nil)
}

// With a Securer, Open awaits the host's greeting on a poller, hands the
// socket and the greeting to it, and reports its outcome as StepSecurity.
func TestOpenSecurer(t *testing.T) {
	r := newRelay(t, Config{Pollers: 1})
	errRefused := errors.New("security type refused")
	for _, want := range []error{nil, errRefused} {
		host := listen(t)
		serveOnce(t, host, func(c net.Conn) {
			_, _ = io.WriteString(c, "RFB 003.008\n")
			_, _ = io.ReadAll(c)
		})
		f := &fakeSecurer{greeting: make(chan string, 1), err: want}
		tg := hostAt(t, host)
		tg.Security = f
		out := openTarget(t, r, tg)
		if g := <-f.greeting; g != "127.0.0.1 RFB 003.008\n" {
			t.Errorf("the Securer got %q", g)
		}
		var oe *OpenError
		switch {
		case want == nil && (out.err != nil || out.o.Fd < 0 || !out.o.Secured || out.o.First != nil):
			t.Errorf("Open with a Securer: %+v", out)
		case want != nil && (!errors.As(out.err, &oe) || oe.Step != StepSecurity || !errors.Is(out.err, want) || out.o.Fd != -1):
			t.Errorf("Open with a failing Securer: %+v, want StepSecurity %v", out, want)
		}
	}
	if n := r.Opening(); n != 0 {
		t.Errorf("Opening %d once every Open is done, want 0", n)
	}
}

// Check, run on every handshake before the reuse guard, allocates nothing.
func TestTargetCheckAllocs(t *testing.T) {
	if testutil.Race {
		t.Skip("the race detector allocates")
	}
	path := "/console?token=x"
	tg := Target{Host: "compute-1.example", Port: 5900, AccessPath: &path}
	if n := testing.AllocsPerRun(100, func() {
		if tg.Check() != nil {
			t.Fatal("refused")
		}
	}); n != 0 {
		t.Errorf("Check: %v allocations, want 0", n)
	}
}
