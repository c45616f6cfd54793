// Copyright (c) 2026 The consoleproxy authors. Licensed under the Apache
// License, Version 2.0, like the rest of gnet.
//
// consoleproxy patch: epoll_ctl, and epoll_wait with timeout 0, never
// sleep, so they run as raw system calls, outside the Go scheduler's
// system-call state (pkg/io/raw_linux.go says why). Exported for
// consoleproxy's relay pollers, whose epoll sets the loops drive.

//go:build linux

package netpoll

import (
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// EpollCtl is epoll_ctl(2), as a raw system call.
func EpollCtl(epfd, op, fd int, ev *unix.EpollEvent) error {
	if _, _, e := syscall.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0); e != 0 {
		return e
	}
	return nil
}

// EpollWaitNow is epoll_wait(2) with timeout 0, as a raw system call.
func EpollWaitNow(epfd int, events []unix.EpollEvent) (int, error) {
	r, _, e := syscall.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// HoldWait, in milliseconds, bounds a wait that holds the loop's P
// (Poller.HoldP): what a stop-the-world waits for a sleeping loop with
// asynchronous preemption off, and the step in which idleness is counted.
const HoldWait = 10

// HoldIdle is how many held waits in a row may run out before the loop
// counts as idle and waits with its P given up until its next event
// (Poller.Polling): 100, one second. A held loop is preempted by sysmon
// every 10 ms or so (a signal and a wake-up); an idle one is not, and lets
// sysmon sleep. Gaps shorter than that (typing, pings, a quiet stream)
// keep the P held: giving it up has sysmon retake it, which puts sysmon
// back to 20 µs naps (mixed at 100 sessions with a 10 ms threshold: 2,260
// naps in 2 s against 198).
const HoldIdle = 100

// epollWait is unix.EpollWait for the loop. With msec 0 (a poll after a
// busy round: it never sleeps) it is a raw system call. A blocking wait
// that may hold the loop's P (hold: Poller.HoldP said so) is raw too,
// bounded by HoldWait: the scheduler then has no P in a system call to
// retake, and sysmon, which goes back to 20 µs naps after every retake,
// stays at its longest. Else unix.EpollWait, whose P sysmon may retake.
func (p *Poller) epollWait(events []unix.EpollEvent, msec int, hold bool) (int, error) {
	if msec == 0 {
		return EpollWaitNow(p.fd, events)
	}
	if h := waitHook.Load(); h != nil {
		(*h)(p, hold)
	}
	if !hold {
		return unix.EpollWait(p.fd, events, msec)
	}
	r, _, e := syscall.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(p.fd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), HoldWait, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

var waitHook atomic.Pointer[func(*Poller, bool)]

// SetWaitHook has f called before each blocking wait of every loop, with
// the poller and whether the wait holds its P; nil removes it. For tests.
func SetWaitHook(f func(p *Poller, hold bool)) {
	if f == nil {
		waitHook.Store(nil)
		return
	}
	waitHook.Store(&f)
}
