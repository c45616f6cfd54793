package relay

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/consoleproxy/consoleproxy/relay/testnet"
)

// startConnect resolves and starts a connect to addr, which must take the
// poller path (one address).
func startConnect(t *testing.T, addr string) int {
	t.Helper()
	ap := netip.MustParseAddrPort(addr)
	fd, ok, err := StartConnect(context.Background(), ap.Addr().String(), int(ap.Port()), DialConfig{Timeout: 5 * time.Second})
	if err != nil || !ok {
		t.Fatalf("StartConnect(%s): fd %d, ok %v, %v", addr, fd, ok, err)
	}
	return fd
}

func connectResult(t *testing.T, r *Relay, fd int, requests [][]byte, timeout time.Duration) shakeResult {
	t.Helper()
	res := make(chan shakeResult, 1)
	r.Connect(fd, requests, timeout, func(fd int, first []byte, err error) { res <- shakeResult{fd, first, err} })
	select {
	case out := <-res:
		if out.fd >= 0 {
			t.Cleanup(func() { unix.Close(out.fd) })
		}
		return out
	case <-time.After(20 * time.Second):
		t.Fatal("no connect result")
	}
	return shakeResult{}
}

// A connect completed on the poller hands back a connected socket with
// no-delay and keepalive set; with a CONNECT request the exchange follows
// on the same poller.
func TestConnectOnPoller(t *testing.T) {
	r := newRelay(t, Config{Pollers: 1})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	hosts := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			hosts <- c
		}
	}()

	out := connectResult(t, r, startConnect(t, ln.Addr().String()), nil, 5*time.Second)
	if out.err != nil || out.fd < 0 {
		t.Fatalf("connect: fd %d, %v", out.fd, out.err)
	}
	for _, o := range []struct {
		level, name int
		what        string
	}{{unix.IPPROTO_TCP, unix.TCP_NODELAY, "TCP_NODELAY"}, {unix.SOL_SOCKET, unix.SO_KEEPALIVE, "SO_KEEPALIVE"}} {
		if v, err := unix.GetsockoptInt(out.fd, o.level, o.name); err != nil || v == 0 {
			t.Errorf("%s = %d, %v", o.what, v, err)
		}
	}
	host := <-hosts
	defer host.Close()
	if _, err := unix.Write(out.fd, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 2)
	if _, err := io.ReadFull(host, b); err != nil || string(b) != "hi" {
		t.Fatalf("host read %q, %v", b, err)
	}

	req, _ := AppendConnect(nil, "/console?token=x", "10.1.2.3", 5900)
	fd := startConnect(t, ln.Addr().String())
	served := make(chan net.Conn, 1)
	go func() {
		h := <-hosts
		buf := make([]byte, len(req))
		if _, err := io.ReadFull(h, buf); err == nil {
			_, _ = io.WriteString(h, "HTTP/1.1 200 OK\r\n\r\nRFB 003.008\n")
		}
		served <- h
	}()
	out = connectResult(t, r, fd, [][]byte{req}, 5*time.Second)
	(<-served).Close()
	if out.err != nil || string(out.first) != "RFB 003.008\n" {
		t.Fatalf("connect then CONNECT: first %q, %v", out.first, out.err)
	}
}

// A refused connect and one that never completes (the host's accept queue
// is full, so its SYNs are dropped) both end with ErrUnreachable and a
// closed socket; the second within the timeout given.
func TestConnectOnPollerFails(t *testing.T) {
	r := newRelay(t, Config{Pollers: 1})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	out := connectResult(t, r, startConnect(t, closed), nil, 5*time.Second)
	if !errors.Is(out.err, ErrUnreachable) || out.fd != -1 {
		t.Fatalf("closed port: fd %d, %v", out.fd, out.err)
	}

	full := testnet.HangingHost(t)
	out = connectResult(t, r, startConnect(t, full.String()), nil, 300*time.Millisecond)
	if !errors.Is(out.err, ErrUnreachable) || !strings.Contains(out.err.Error(), "timed out") || out.fd != -1 {
		t.Fatalf("full accept queue: fd %d, %v", out.fd, out.err)
	}
}

// A name with several addresses is left to the blocking Dial; addresses
// outside Allowed are refused before any socket is opened.
func TestStartConnectChoices(t *testing.T) {
	if _, ok, err := StartConnect(context.Background(), "127.0.0.1", 1, DialConfig{Allowed: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}); !errors.Is(err, ErrTargetRefused) || !ok {
		t.Fatalf("outside allowed: ok %v, %v", ok, err)
	}
	if _, ok, err := StartConnect(context.Background(), "fe80::1%lo", 1, DialConfig{}); err != nil || ok {
		t.Fatalf("zoned address: ok %v, %v", ok, err)
	}
}
