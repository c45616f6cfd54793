//go:build linux

package relay

import (
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The pollers' system calls on non-blocking sockets are raw: none of them
// sleeps, so none needs the Go scheduler's system-call state. Through
// x/sys/unix a 64 KiB copy that outlasted one of sysmon's ticks had its P
// retaken and a spinning thread started, and the retakes kept sysmon waking
// every 20 µs while streaming (DECISIONS.md "Raw system calls on
// non-blocking sockets"). Reads, writev and close (gio) and epoll_ctl and
// epoll_wait with timeout 0 (gnetpoll) are the patched gnet's
// (internal/gnet/pkg/io and pkg/netpoll, raw_linux.go), which the loops use
// for the client sockets too; the rest are here.

// rawSetsockoptInt is setsockopt(2) of an int option.
func rawSetsockoptInt(fd, level, opt, value int) error {
	v := int32(value)
	if _, _, e := syscall.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt), uintptr(unsafe.Pointer(&v)), 4, 0); e != 0 {
		return e
	}
	return nil
}

// rawSocket is socket(2).
func rawSocket(family, typ, proto int) (int, error) {
	r, _, e := syscall.RawSyscall(unix.SYS_SOCKET, uintptr(family), uintptr(typ), uintptr(proto))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// rawConnect is connect(2) of a non-blocking socket to ap (zone: IPv6's
// interface index), its sockaddr built here, on the stack: EINPROGRESS is
// its normal outcome.
func rawConnect(fd int, ap netip.AddrPort, zone uint32) error {
	var ptr unsafe.Pointer
	var size uintptr
	var sa4 unix.RawSockaddrInet4
	var sa6 unix.RawSockaddrInet6
	if ap.Addr().Is4() {
		sa4.Family = unix.AF_INET
		putPort(&sa4.Port, ap.Port())
		sa4.Addr = ap.Addr().As4()
		ptr, size = unsafe.Pointer(&sa4), unsafe.Sizeof(sa4)
	} else {
		sa6.Family = unix.AF_INET6
		putPort(&sa6.Port, ap.Port())
		sa6.Addr = ap.Addr().As16()
		sa6.Scope_id = zone
		ptr, size = unsafe.Pointer(&sa6), unsafe.Sizeof(sa6)
	}
	if _, _, e := syscall.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(ptr), size); e != 0 {
		return e
	}
	return nil
}

// putPort stores port in network byte order.
func putPort(dst *uint16, port uint16) {
	b := (*[2]byte)(unsafe.Pointer(dst))
	b[0], b[1] = byte(port>>8), byte(port)
}
