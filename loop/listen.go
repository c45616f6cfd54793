//go:build linux

package loop

import (
	"errors"
	"fmt"
	"net"
	"strconv"

	"golang.org/x/sys/unix"
)

// gnet listens with SO_REUSEPORT, one socket per event loop, so that the
// kernel spreads accepts over the loops. The same option would let a second
// consoleproxy (or anything else setting it) bind the port too, and the
// kernel would split clients between the two. So Start first binds the
// address itself without SO_REUSEPORT: that bind fails if any socket
// listens there, whoever holds it.
//
// The probe also fixes the port: for port 0 it is the port the kernel chose
// for the probe, and every loop's socket binds that one. The probe socket
// is closed before gnet binds: a process binding the port in the few
// microseconds between the two is not detected (and one with SO_REUSEPORT
// would share it). The probe sets SO_REUSEADDR, as gnet's sockets do, so a
// restart is not refused over the TIME_WAIT connections of the previous run.

// ErrAddrInUse is Start's error when another socket holds the address.
var ErrAddrInUse = errors.New("address already in use by another process or listener")

// probeListen resolves listen as gnet does (net.ResolveTCPAddr; an IPv6
// address is IPv6-only, no address is the dual-stack wildcard), binds it
// without SO_REUSEPORT and returns host:port with the port the probe got,
// for gnet.
func probeListen(listen string) (string, error) {
	a, err := net.ResolveTCPAddr("tcp", listen)
	if err != nil {
		return "", err
	}
	family, sa, v6only := unix.AF_INET6, unix.Sockaddr(&unix.SockaddrInet6{Port: a.Port}), false
	switch ip4, ip16 := a.IP.To4(), a.IP.To16(); {
	case ip4 != nil:
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: a.Port, Addr: [4]byte(ip4)}
	case ip16 != nil:
		sa, v6only = &unix.SockaddrInet6{Port: a.Port, Addr: [16]byte(ip16), ZoneId: zoneID(a.Zone)}, true
	}
	port, err := bindProbe(family, sa, v6only)
	if errors.Is(err, unix.EADDRINUSE) {
		return "", ErrAddrInUse
	}
	if err != nil {
		return "", err
	}
	host := ""
	if a.IP != nil {
		host = a.IP.String()
		if a.Zone != "" {
			host += "%" + a.Zone
		}
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), nil
}

// bindProbe binds a socket (SO_REUSEADDR, never listening) to sa and
// returns the bound port; the socket is closed on return.
func bindProbe(family int, sa unix.Sockaddr, v6only bool) (int, error) {
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return 0, err
	}
	if family == unix.AF_INET6 {
		v := 0
		if v6only {
			v = 1
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v); err != nil {
			return 0, err
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return 0, err
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		return 0, err
	}
	switch g := got.(type) {
	case *unix.SockaddrInet4:
		return g.Port, nil
	case *unix.SockaddrInet6:
		return g.Port, nil
	}
	return 0, fmt.Errorf("unexpected socket address %T", got)
}

// zoneID is the interface index of an IPv6 zone ("" is 0).
func zoneID(zone string) uint32 {
	if zone == "" {
		return 0
	}
	if ifi, err := net.InterfaceByName(zone); err == nil {
		return uint32(ifi.Index)
	}
	if n, err := strconv.Atoi(zone); err == nil {
		return uint32(n)
	}
	return 0
}
