// Copyright (c) 2026 The consoleproxy authors. Licensed under the Apache
// License, Version 2.0, like the rest of gnet.
//
// consoleproxy patch: accept(2) failing for lack of descriptors or memory
// must never stop a listener. Upstream gnet returns ErrAcceptSocket, which
// ends the event loop and the engine: one client holding enough idle
// connections could take the port down for good.

//go:build linux

package gnet

import (
	"time"

	"golang.org/x/sys/unix"

	"github.com/panjf2000/gnet/v2/pkg/queue"
)

const (
	// acceptBackoffMin and acceptBackoffMax bound how long a listener is
	// left unwatched after accept(2) ran out of descriptors: connections
	// wait in the kernel's backlog meanwhile instead of being shed. The
	// pause doubles while the shortage lasts and resets on a good accept.
	acceptBackoffMin = 10 * time.Millisecond
	acceptBackoffMax = time.Second
	// maxShedPerRound bounds the connections closed in one shedding round.
	maxShedPerRound = 4096
)

// isResourceErr reports an accept(2) error that says "not now", not "never".
func isResourceErr(err error) bool {
	return err == unix.EMFILE || err == unix.ENFILE || err == unix.ENOBUFS || err == unix.ENOMEM
}

// openSpare holds one descriptor in reserve, given up to shed connections
// when the process runs out.
func openSpare() int {
	fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	return fd
}

// acceptFailed handles an accept(2) error on listener fd: shed what waits in
// its backlog, tell the handler, stop watching the listener for a backoff.
// It returns whether err was such a resource error (else the caller fails
// as upstream does).
func (el *eventloop) acceptFailed(fd int, err error) bool {
	if !isResourceErr(err) {
		return false
	}
	shed := el.shed(fd)
	if h, ok := el.eventHandler.(AcceptErrorHandler); ok {
		h.OnAcceptError(err, shed)
	}
	el.backoffAccept(fd)
	return true
}

// shed gives up the spare descriptor so accept(2) can succeed, closes each
// waiting connection at once (its client sees a reset or EOF instead of
// hanging), then takes the spare back.
func (el *eventloop) shed(fd int) int {
	if el.spare > 0 {
		_ = unix.Close(el.spare)
		el.spare = -1
	}
	n := 0
	for n < maxShedPerRound {
		nfd, _, err := unix.Accept4(fd, unix.SOCK_CLOEXEC)
		if err == unix.EINTR || err == unix.ECONNABORTED {
			continue
		}
		if err != nil {
			break
		}
		_ = unix.Close(nfd)
		n++
	}
	el.spare = openSpare()
	return n
}

// backoffAccept stops watching listener fd and watches it again after the
// current backoff, doubled for next time.
func (el *eventloop) backoffAccept(fd int) {
	ln := el.listeners[fd]
	if ln == nil || el.acceptPaused[fd] {
		return
	}
	if el.poller.Delete(fd) != nil {
		return
	}
	if el.acceptPaused == nil {
		el.acceptPaused = map[int]bool{}
	}
	el.acceptPaused[fd] = true
	d := el.acceptBackoff
	if d < acceptBackoffMin {
		d = acceptBackoffMin
	}
	el.acceptBackoff = 2 * d
	if el.acceptBackoff > acceptBackoffMax {
		el.acceptBackoff = acceptBackoffMax
	}
	handler := el.accept
	if el.engine.ingress == el {
		handler = el.accept0
	}
	time.AfterFunc(d, func() {
		_ = el.poller.Trigger(queue.HighPriority, func(any) error {
			if !el.acceptPaused[fd] || el.acceptStopped { // StopAccepting: for good
				return nil
			}
			delete(el.acceptPaused, fd)
			return el.poller.AddRead(ln.packPollAttachment(handler), el.engine.ingress == el)
		}, nil)
	})
}

// acceptOK resets the backoff after a successful accept.
func (el *eventloop) acceptOK() { el.acceptBackoff = 0 }
