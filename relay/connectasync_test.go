//go:build linux

package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

// routeTo resolves addr (host:port) with cfg.
func routeTo(t *testing.T, addr string, cfg DialConfig) route {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(port)
	cfg.Timeout = 5 * time.Second
	rt, err := resolveRoute(context.Background(), host, n, cfg)
	if err != nil {
		t.Fatalf("resolveRoute(%s): %v", addr, err)
	}
	return rt
}

// startConnect is the route to addr, an IP address and port.
func startConnect(t *testing.T, addr string) route { return routeTo(t, addr, DialConfig{}) }

func connectResult(t *testing.T, r *Relay, rt route, requests [][]byte, timeout time.Duration) shakeResult {
	t.Helper()
	res := make(chan shakeResult, 1)
	r.openRoute(rt, requests, timeout, r.pick(-1), false, func(fd int, first []byte, err error) { res <- shakeResult{fd, first, err} })
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
	rt := startConnect(t, ln.Addr().String())
	served := make(chan net.Conn, 1)
	go func() {
		h := <-hosts
		buf := make([]byte, len(req))
		if _, err := io.ReadFull(h, buf); err == nil {
			_, _ = io.WriteString(h, "HTTP/1.1 200 OK\r\n\r\nRFB 003.008\n")
		}
		served <- h
	}()
	out = connectResult(t, r, rt, [][]byte{req}, 5*time.Second)
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

	full := testutil.HangingHost(t)
	out = connectResult(t, r, startConnect(t, full.String()), nil, 300*time.Millisecond)
	if !errors.Is(out.err, ErrUnreachable) || !strings.Contains(out.err.Error(), "timed out") || out.fd != -1 {
		t.Fatalf("full accept queue: fd %d, %v", out.fd, out.err)
	}
}

// fakeResolver gives the names it holds their addresses, in order.
type fakeResolver map[string][]netip.Addr

func (r fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := r[host]; ok {
		return append([]netip.Addr(nil), a...), nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// resolveRoute opens no socket: a name with any address outside Allowed is
// refused whole; a zone becomes the interface's index; with a forward
// proxy the route leads to the proxy's addresses and its CONNECT names the
// compute host's first address.
func TestResolveChoices(t *testing.T) {
	ctx := context.Background()
	res := fakeResolver{
		"mixed.test": {netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("127.0.0.1")},
		"two.test":   {netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")},
		"fwd.test":   {netip.MustParseAddr("127.0.0.7"), netip.MustParseAddr("::1")},
	}
	ten := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, host := range []string{"127.0.0.1", "mixed.test"} {
		if _, err := resolveRoute(ctx, host, 1, DialConfig{Allowed: ten, Resolver: res}); !errors.Is(err, ErrTargetRefused) {
			t.Fatalf("%s outside allowed: %v", host, err)
		}
	}
	if _, err := resolveRoute(ctx, "nowhere.test", 1, DialConfig{Resolver: res}); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("unknown name: %v", err)
	}
	rt, err := resolveRoute(ctx, "two.test", 5900, DialConfig{Allowed: ten, Resolver: res})
	if err != nil || rt.viaProxy() || len(rt.addrs) != 2 || rt.addrs[0].String() != "10.0.0.1:5900" || rt.addrs[1].String() != "10.0.0.2:5900" {
		t.Fatalf("two addresses: %+v, %v", rt, err)
	}
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skip("no lo interface")
	}
	rt, err = resolveRoute(ctx, "fe80::1%lo", 1, DialConfig{})
	if err != nil || len(rt.addrs) != 1 || rt.addrs[0].Addr().Zone() != strconv.Itoa(lo.Index) {
		t.Fatalf("zoned address: %+v, %v", rt, err)
	}
	fp := &ForwardProxy{Addr: "fwd.test:3128"}
	rt, err = resolveRoute(ctx, "two.test", 5900, DialConfig{Allowed: ten, Resolver: res, Proxy: fp})
	if err != nil || !rt.viaProxy() || len(rt.addrs) != 2 || rt.addrs[0].String() != "127.0.0.7:3128" || rt.addrs[1].String() != "[::1]:3128" ||
		!strings.HasPrefix(string(rt.proxy), "CONNECT 10.0.0.1:5900 HTTP/1.1\r\n") {
		t.Fatalf("through a forward proxy: %+v %q, %v", rt, rt.proxy, err)
	}
	if _, err := resolveRoute(ctx, "mixed.test", 5900, DialConfig{Allowed: ten, Resolver: res, Proxy: fp}); !errors.Is(err, ErrTargetRefused) {
		t.Fatalf("through a forward proxy, outside allowed: %v", err)
	}
}

// The poller tries a name's addresses in turn: one refused at once gives
// way to the next at once, one that never answers the SYN gives way after
// its share of the time left, and the first that connects is the session's.
// When none does, the error is ErrUnreachable within the timeout.
func TestConnectTriesAddressesInTurn(t *testing.T) {
	r := newRelay(t, Config{Pollers: 1})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c
		}
	}()
	hanging := testutil.HangingHostAt(t, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.3"), port))
	res := fakeResolver{
		// 127.0.0.2: nothing listens on the port, so the connect is refused.
		"live.test": {netip.MustParseAddr("127.0.0.2"), hanging.Addr(), netip.MustParseAddr("127.0.0.1")},
		"dead.test": {netip.MustParseAddr("127.0.0.2"), hanging.Addr()},
	}
	rt := routeTo(t, fmt.Sprintf("live.test:%d", port), DialConfig{Resolver: res})
	out := connectResult(t, r, rt, nil, 5*time.Second)
	if out.err != nil || out.fd < 0 {
		t.Fatalf("three addresses, the last alive: fd %d, %v", out.fd, out.err)
	}
	host := <-accepted
	defer host.Close()
	if _, err := unix.Write(out.fd, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 2)
	if _, err := io.ReadFull(host, b); err != nil || string(b) != "hi" {
		t.Fatalf("host read %q, %v", b, err)
	}

	rt = routeTo(t, fmt.Sprintf("dead.test:%d", port), DialConfig{Resolver: res})
	out = connectResult(t, r, rt, nil, 300*time.Millisecond)
	if !errors.Is(out.err, ErrUnreachable) || !strings.Contains(out.err.Error(), "timed out") || out.fd != -1 {
		t.Fatalf("no address alive: fd %d, %v", out.fd, out.err)
	}
	testutil.WaitFor(t, "no connect pending", func() bool { return r.Opening() == 0 })
}

// An address share: an equal part of the time left, at least minAttempt,
// never past the deadline.
func TestAttemptDeadline(t *testing.T) {
	now := time.Unix(1000, 0)
	for _, tc := range []struct {
		left  time.Duration
		addrs int
		want  time.Duration
	}{
		{10 * time.Second, 2, 5 * time.Second},
		{10 * time.Second, 1, 10 * time.Second},
		{5 * time.Second, 3, minAttempt},
		{time.Second, 2, time.Second},
		{0, 2, 0},
	} {
		if got := attemptDeadline(now, now.Add(tc.left), tc.addrs).Sub(now); got != tc.want {
			t.Errorf("%v left, %d addresses: %v, want %v", tc.left, tc.addrs, got, tc.want)
		}
	}
}
