//go:build linux

package relay

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The pollers' reads, writes and non-blocking waits are raw system calls:
// on a non-blocking socket none of them sleeps, so none needs the Go
// scheduler's system-call state. Through x/sys/unix a 64 KiB copy that
// outlasted one of sysmon's ticks had its P retaken and a spinning thread
// started, and the retakes kept sysmon waking every 20 µs while streaming
// (DECISIONS.md "Raw system calls on non-blocking sockets"). The patched
// gnet does the same for the client sockets (internal/gnet/pkg/io).

// rawRead is read(2) on a non-blocking fd.
func rawRead(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r, _, e := syscall.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// iovecsOnStack is how many buffers rawWritev passes without allocating:
// a client batch of 64 KiB has at most 33 (loop's compactMax) and one more
// for decoded base64; a held-back write is one buffer.
const iovecsOnStack = 40

// rawWritev is writev(2) on a non-blocking fd; empty buffers are skipped.
func rawWritev(fd int, iov [][]byte) (int, error) {
	var small [iovecsOnStack]unix.Iovec
	vecs := small[:0]
	for _, b := range iov {
		if len(b) == 0 {
			continue
		}
		v := unix.Iovec{Base: &b[0]}
		v.SetLen(len(b))
		vecs = append(vecs, v)
	}
	if len(vecs) == 0 {
		return 0, nil
	}
	r, _, e := syscall.RawSyscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&vecs[0])), uintptr(len(vecs)))
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// epollWaitNow is epoll_wait(2) with timeout 0: it never sleeps.
func epollWaitNow(epfd int, events []unix.EpollEvent) (int, error) {
	r, _, e := syscall.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}
