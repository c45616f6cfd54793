//go:build linux

package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"
)

// ownListeners lists the addresses of the proxy's own listeners: --listen
// (from the flag: a name is resolved, port 0 cannot be known before gnet
// binds it and is left out) and each bound listener in lns (nil ones
// skipped). A listener on an unspecified address is reached through every
// address of this machine: those are listed too (relay.Denied adds the
// loopback ones). The proxy never connects to one of them and the admin API
// never mints a token to one, whatever --allowed-targets says: a console
// there would be the proxy itself.
func ownListeners(listen string, lns ...net.Listener) ([]netip.AddrPort, error) {
	var own []netip.AddrPort
	host, p, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("--listen: %w", err)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("--listen: port must be 0 to 65535")
	}
	if port != 0 {
		var addrs []netip.Addr
		if host == "" {
			addrs = []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()}
		} else if addrs, err = lookup(host); err != nil {
			return nil, fmt.Errorf("--listen: %w", err)
		}
		for _, a := range addrs {
			own = append(own, netip.AddrPortFrom(a, uint16(port)))
		}
	}
	for _, ln := range lns {
		if ap, ok := tcpAddrPort(ln); ok {
			own = append(own, ap)
		}
	}
	return withMachineAddrs(own), nil
}

// tcpAddrPort is the address of a TCP listener (false for nil or another
// kind), IPv4 unmapped.
func tcpAddrPort(ln net.Listener) (netip.AddrPort, bool) {
	if ln == nil {
		return netip.AddrPort{}, false
	}
	tcp, ok := ln.Addr().(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}, false
	}
	ap := tcp.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}

// lookup resolves a --listen host (an address or a name) within 5s.
func lookup(host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a.Unmap()}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	for i := range addrs {
		addrs[i] = addrs[i].Unmap()
	}
	return addrs, err
}

// withMachineAddrs adds, for each entry on an unspecified address, the
// same port on every address of this machine's interfaces (as they are at
// start-up).
func withMachineAddrs(own []netip.AddrPort) []netip.AddrPort {
	if !slices.ContainsFunc(own, func(ap netip.AddrPort) bool { return ap.Addr().IsUnspecified() }) {
		return own // no wildcard listener: nothing to enumerate (no netlink socket)
	}
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		return own
	}
	out := own
	for _, ap := range own {
		if !ap.Addr().IsUnspecified() {
			continue
		}
		for _, ia := range ifaddrs {
			if n, ok := ia.(*net.IPNet); ok {
				if a, ok := netip.AddrFromSlice(n.IP); ok {
					out = append(out, netip.AddrPortFrom(a.Unmap(), ap.Port()))
				}
			}
		}
	}
	return out
}
