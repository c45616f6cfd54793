//go:build linux

package relay

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

// countingListener counts the connections it accepts (and closes them).
type countingListener struct {
	ln       net.Listener
	accepted atomic.Int64
}

func listenCounting(t *testing.T, addr string) *countingListener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	l := &countingListener{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.accepted.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return l
}

func (l *countingListener) addrPort() netip.AddrPort {
	return l.ln.Addr().(*net.TCPAddr).AddrPort()
}

// connectsMade dials l itself once and returns how many connections it
// had accepted before that one: the accept loop takes them in order, so
// once ours is counted every earlier one is.
func (l *countingListener) connectsMade(t *testing.T) int64 {
	t.Helper()
	ap := l.addrPort()
	if ap.Addr().IsUnspecified() {
		ap = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ap.Port())
	}
	c, err := net.Dial("tcp", ap.String())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	testutil.WaitFor(t, "the control connection accepted", func() bool { return l.accepted.Load() > 0 })
	return l.accepted.Load() - 1
}

// TestDialDeniesOwnListeners: a target that is one of the proxy's own
// listeners (DialConfig.Deny) is refused with ErrTargetRefused by every way
// of connecting, even when Allowed lets its network in, and no connection
// reaches it; a listener on an unspecified address is reached from any
// loopback address and from 0.0.0.0, so those are refused too.
func TestDialDeniesOwnListeners(t *testing.T) {
	ctx := context.Background()
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for _, tc := range []struct {
		listen  string
		targets []string
	}{
		{"127.0.0.1:0", []string{"127.0.0.1", "localhost", "::ffff:127.0.0.1", "0.0.0.0"}},
		{"0.0.0.0:0", []string{"127.0.0.1", "127.0.0.2", "localhost", "0.0.0.0"}},
	} {
		own := listenCounting(t, tc.listen)
		port := int(own.addrPort().Port())
		for _, allowedNets := range [][]netip.Prefix{nil, loopback} {
			cfg := DialConfig{Timeout: time.Second, Allowed: allowedNets, Deny: []netip.AddrPort{own.addrPort()}}
			for _, host := range tc.targets {
				if _, err := resolveRoute(ctx, host, port, cfg); !errors.Is(err, ErrTargetRefused) {
					t.Errorf("%s: Resolve %s: %v, want ErrTargetRefused", tc.listen, host, err)
				}
				pcfg := cfg
				pcfg.Proxy = &ForwardProxy{Addr: own.addrPort().String()}
				if _, err := resolveRoute(ctx, host, port, pcfg); !errors.Is(err, ErrTargetRefused) {
					t.Errorf("%s: Resolve %s through a forward proxy: %v, want ErrTargetRefused", tc.listen, host, err)
				}
			}
		}
		if n := own.connectsMade(t); n != 0 {
			t.Errorf("%s: %d connections reached the proxy's own listener", tc.listen, n)
		}
	}
	// Another port on the same address is a compute host like any other.
	other := listenCounting(t, "127.0.0.1:0")
	deny := []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:1"), netip.MustParseAddrPort("127.0.0.1:2")}
	if _, err := resolveRoute(ctx, "127.0.0.1", int(other.addrPort().Port()), DialConfig{Timeout: time.Second, Deny: deny}); err != nil {
		t.Fatalf("a port no listener of ours uses: %v", err)
	}
}

func TestDenied(t *testing.T) {
	deny := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:9180"), netip.MustParseAddrPort("[::]:6080"),
		netip.MustParseAddrPort("192.0.2.7:6080")}
	for ap, want := range map[string]bool{
		"127.0.0.1:9180":          true,
		"[::ffff:127.0.0.1]:9180": true,
		"0.0.0.0:9180":            true,
		"[::]:9180":               true,
		"127.0.0.2:9180":          false, // a listener on 127.0.0.1 alone is not there
		"[::1]:9180":              false,
		"127.0.0.1:9181":          false,
		"127.0.0.9:6080":          true, // [::]:6080 takes every loopback address
		"[::1]:6080":              true,
		"192.0.2.7:6080":          true,
		"192.0.2.8:6080":          false,
		"10.0.0.1:9180":           false,
	} {
		if got := Denied(netip.MustParseAddrPort(ap), deny); got != want {
			t.Errorf("Denied(%s) = %v, want %v", ap, got, want)
		}
	}
}
