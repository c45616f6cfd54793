// Copyright (c) 2026 The consoleproxy authors. Licensed under the Apache
// License, Version 2.0, like the rest of gnet.
//
// consoleproxy patch: epoll_ctl never sleeps, so it runs as a raw system
// call, outside the Go scheduler's system-call state (pkg/io/raw_linux.go
// says why).

//go:build linux

package netpoll

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

func epollCtl(epfd, op, fd int, ev *unix.EpollEvent) error {
	if _, _, e := syscall.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0); e != 0 {
		return e
	}
	return nil
}

// epollWait is unix.EpollWait for the loop; with msec 0 (a poll after a
// busy round: it never sleeps) it is a raw system call.
func epollWait(epfd int, events []unix.EpollEvent, msec int) (int, error) {
	if msec != 0 {
		return unix.EpollWait(epfd, events, msec)
	}
	r, _, e := syscall.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}
