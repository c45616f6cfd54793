// Copyright (c) 2026 The consoleproxy authors. Licensed under the Apache
// License, Version 2.0, like the rest of gnet.
//
// consoleproxy patch: reads and writes on the loops' non-blocking sockets
// as raw system calls. Through x/sys/unix each one entered the Go
// scheduler's system-call state; a 64 KiB copy that outlasted one of
// sysmon's ticks then had its P retaken (and a spinning thread started to
// look for other work, with no other P free), and every retake kept sysmon
// waking at 20 µs: thousands of thread wake-ups a second on the cores the
// loops need, while streaming (DECISIONS.md "Raw system calls on
// non-blocking sockets"). A non-blocking socket call never sleeps, so it
// needs no hand-off: it runs as a raw call, as the runtime's own netpoll
// does. Blocking calls (epoll_wait with a timeout) keep the scheduler's
// accounting.

//go:build linux

package io

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// zero is the buffer address passed for an empty slice.
var zero uintptr

func bufPtr(p []byte) unsafe.Pointer {
	if len(p) > 0 {
		return unsafe.Pointer(&p[0])
	}
	return unsafe.Pointer(&zero)
}

func result(r uintptr, e syscall.Errno) (int, error) {
	if e != 0 {
		return int(r), e
	}
	return int(r), nil
}

// Read is read(2) on a non-blocking fd, as a raw system call.
func Read(fd int, p []byte) (int, error) {
	r, _, e := syscall.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(bufPtr(p)), uintptr(len(p)))
	return result(r, e)
}

// Write is write(2) on a non-blocking fd, as a raw system call.
func Write(fd int, p []byte) (int, error) {
	r, _, e := syscall.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(bufPtr(p)), uintptr(len(p)))
	return result(r, e)
}

// iovecsOnStack is how many buffers a writev passes without allocating:
// consoleproxy's upload batches have at most 68 (loop's maxBatchIOV).
const iovecsOnStack = 68

// rawWritev is writev(2) on a non-blocking fd, as a raw system call; empty
// buffers are skipped.
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
	return result(r, e)
}

// Close is close(2) of a socket without SO_LINGER, as a raw system call.
func Close(fd int) error {
	if _, _, e := syscall.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0); e != 0 {
		return e
	}
	return nil
}
