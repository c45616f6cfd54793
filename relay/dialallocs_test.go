//go:build linux

package relay

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// deadlineResolver answers every name with 10.0.0.1 and notes whether its
// context carried a deadline.
type deadlineResolver struct{ had *bool }

func (r deadlineResolver) LookupNetIP(ctx context.Context, _, _ string) ([]netip.Addr, error) {
	_, *r.had = ctx.Deadline()
	return []netip.Addr{netip.MustParseAddr("10.0.0.1")}, nil
}

// ResolveBlocks says when Resolve may wait on DNS: a name, or any route
// through a forward proxy; an address alone never. A lookup still runs
// under --connect-timeout's deadline; an address costs no timeout context
// (its timer and context were a handshake's garbage).
func TestResolveBlocks(t *testing.T) {
	fp := &ForwardProxy{Addr: "127.0.0.1:3128"}
	for _, c := range []struct {
		host string
		cfg  DialConfig
		want bool
	}{
		{"127.0.0.1", DialConfig{}, false},
		{"::1", DialConfig{}, false},
		{"fe80::1%lo", DialConfig{}, false},
		{"compute-1.test", DialConfig{}, true},
		{"127.0.0.1", DialConfig{Proxy: fp}, true},
	} {
		if got := ResolveBlocks(c.host, c.cfg); got != c.want {
			t.Errorf("ResolveBlocks(%q, proxy %v) = %v, want %v", c.host, c.cfg.Proxy != nil, got, c.want)
		}
	}
	var had bool
	cfg := DialConfig{Timeout: 5 * time.Second, Resolver: deadlineResolver{&had}}
	if _, err := resolveRoute(context.Background(), "compute-1.test", 5900, cfg); err != nil || !had {
		t.Fatalf("a name's lookup: deadline %v, err %v", had, err)
	}
	n := testing.AllocsPerRun(100, func() {
		if _, err := resolveRoute(context.Background(), "127.0.0.1", 5900, cfg); err != nil {
			t.Fatal(err)
		}
	})
	if n > resolveAddrAllocs {
		t.Fatalf("resolveRoute of an address: %.0f allocations, want at most %d", n, resolveAddrAllocs)
	}
}

// resolveAddrAllocs bounds resolveRoute's allocations for an IP address: the
// resolved address and the route's; a timeout context would add 4.
const resolveAddrAllocs = 2

// connectAllocs bounds connectNonblocking's allocations: none, its sockaddr
// is built on the stack (rawConnect). Both families' sockaddrs and a zone
// parse that failed on "" (an error value) made 3 before, x/sys/unix's one
// sockaddr 1.
const connectAllocs = 0

// TestConnectNonblockingAllocs: a connect allocates nothing, and an IPv6
// address's zone still reaches the socket (a link-local host connects).
func TestConnectNonblockingAllocs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ap := ln.Addr().(*net.TCPAddr).AddrPort()
	n := testing.AllocsPerRun(50, func() {
		fd, err := connectNonblocking(ap, time.Minute, true)
		if err != nil {
			t.Fatal(err)
		}
		_ = unix.Close(fd)
	})
	if n > connectAllocs {
		t.Fatalf("connectNonblocking: %.0f allocations, want at most %d", n, connectAllocs)
	}
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skip("no lo interface")
	}
	ln6, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback")
	}
	defer ln6.Close()
	ap6 := netip.AddrPortFrom(netip.MustParseAddr("::1").WithZone(strconv.Itoa(lo.Index)), ln6.Addr().(*net.TCPAddr).AddrPort().Port())
	fd, err := connectNonblocking(ap6, time.Minute, true)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	c, err := ln6.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}
