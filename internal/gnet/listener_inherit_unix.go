// Copyright (c) 2026 The consoleproxy authors. Licensed under the Apache
// License, Version 2.0, like the rest of gnet.
//
// consoleproxy patch: a binary upgrade hands the listening sockets of one
// process to the next. Upstream gnet always binds its own sockets (one per
// event loop with SO_REUSEPORT, each with its own accept queue), and closing
// a listener is its only way to stop accepting. Here:
//   - WithListenerFDs gives the engine sockets to use instead of binding:
//     loop i takes fds[i] (with SO_REUSEPORT), so every inherited accept
//     queue keeps a loop that drains it;
//   - Engine.ListenerFDs duplicates every loop's listening socket for the
//     next process;
//   - Engine.StopAccepting unwatches the listeners on every loop without
//     closing them: what waits in their queues stays for the process that
//     shares the sockets.

//go:build linux

package gnet

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"golang.org/x/sys/unix"

	errorx "github.com/panjf2000/gnet/v2/pkg/errors"
	"github.com/panjf2000/gnet/v2/pkg/queue"
	"github.com/panjf2000/gnet/v2/pkg/socket"
)

// WithListenerFDs makes the engine use these listening TCP sockets, handed
// over by another process, instead of binding its address. With
// SO_REUSEPORT, loop i accepts on fds[i] and there are at least len(fds)
// loops; loops past len(fds) bind sockets of their own. The engine owns the
// descriptors from Run on and closes them when it stops. Only for a single
// TCP address.
func WithListenerFDs(fds []int) Option {
	return func(opts *Options) {
		opts.ListenerFDs = fds
	}
}

// inheritedLoops raises the number of event loops to the number of
// inherited SO_REUSEPORT sockets: a socket with no loop would strand the
// connections in its accept queue.
func inheritedLoops(opts *Options, n int) int {
	if opts.ReusePort && len(opts.ListenerFDs) > n {
		return len(opts.ListenerFDs)
	}
	return n
}

// firstListener is the engine's first listener: inherited fds[0] if any,
// else a new socket.
func firstListener(network, addr string, opts *Options, addrs int) (*listener, error) {
	fds := opts.ListenerFDs
	if len(fds) == 0 {
		return initListener(network, addr, opts)
	}
	if addrs != 1 || (network != "tcp" && network != "tcp4" && network != "tcp6") {
		return nil, fmt.Errorf("inherited listeners: one TCP address only: %w", errorx.ErrUnsupportedOp)
	}
	if len(fds) > 1 && !opts.ReusePort {
		return nil, fmt.Errorf("inherited listeners: %d sockets need SO_REUSEPORT: %w", len(fds), errorx.ErrUnsupportedOp)
	}
	return inheritListener(fds[0], addr, opts)
}

// loopListener is loop i's listener (i > 0) with SO_REUSEPORT: inherited
// fds[i] if any, else a new socket bound like l.
func loopListener(l *listener, i int, opts *Options) (*listener, error) {
	if i < len(opts.ListenerFDs) {
		return inheritListener(opts.ListenerFDs[i], l.address, opts)
	}
	return initListener(l.network, l.address, opts)
}

// inheritListener wraps an inherited descriptor, checking that it is a
// listening TCP socket, and makes it non-blocking (the flag belongs to the
// open file, shared with the process that handed it over, which wants it
// non-blocking too: two processes accept from one queue). Its
// TCP_USER_TIMEOUT becomes opts.TCPUserTimeout, which the connections it
// accepts from now on inherit.
func inheritListener(fd int, address string, opts *Options) (*listener, error) {
	if typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || typ != unix.SOCK_STREAM {
		return nil, fmt.Errorf("inherited listener fd %d: not a stream socket (%v)", fd, err)
	}
	if on, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || on != 1 {
		return nil, fmt.Errorf("inherited listener fd %d: not listening (%v)", fd, err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, fmt.Errorf("inherited listener fd %d: %w", fd, err)
	}
	ms := int(opts.TCPUserTimeout.Milliseconds())
	if ms < 0 {
		ms = 0
	}
	if err := socket.SetUserTimeout(fd, ms); err != nil {
		return nil, fmt.Errorf("inherited listener fd %d: %w", fd, err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil, fmt.Errorf("inherited listener fd %d: %w", fd, err)
	}
	ln := &listener{fd: fd, addr: socket.SockaddrToTCPOrUnixAddr(sa), address: address, network: "tcp"}
	ln.openOnce.Do(func() {}) // open: already is
	return ln, nil
}

// ListenerFDs returns a duplicate (close-on-exec) of every listening socket
// of the engine, the first loop's first: what WithListenerFDs takes in the
// next process. The caller owns and closes them.
func (e Engine) ListenerFDs() ([]int, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	<-e.eng.started // OnBoot runs before the loops and their listeners exist
	var lns []*listener
	if e.eng.ingress != nil {
		lns = sortedListeners(e.eng.listeners)
	} else {
		e.eng.eventLoops.iterate(func(_ int, el *eventloop) bool {
			lns = append(lns, sortedListeners(el.listeners)...)
			return true
		})
	}
	fds := make([]int, 0, len(lns))
	for _, ln := range lns {
		fd, err := unix.FcntlInt(uintptr(ln.fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			for _, d := range fds {
				_ = unix.Close(d)
			}
			return nil, fmt.Errorf("dup listener: %w", err)
		}
		fds = append(fds, fd)
	}
	return fds, nil
}

func sortedListeners(m map[int]*listener) []*listener {
	out := make([]*listener, 0, len(m))
	for _, ln := range m {
		out = append(out, ln)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].fd < out[j].fd })
	return out
}

// StopAccepting stops every loop accepting, for good, and returns once each
// has (or ctx ends). The listening sockets stay open until the engine
// stops: connections waiting in their accept queues are not refused, and a
// process sharing the sockets accepts them. Open connections are untouched.
func (e Engine) StopAccepting(ctx context.Context) error {
	if err := e.Validate(); err != nil {
		return err
	}
	select {
	case <-e.eng.started: // OnBoot runs before the loops exist
	case <-ctx.Done():
		return fmt.Errorf("stop accepting: %w", ctx.Err())
	}
	var loops []*eventloop
	if e.eng.ingress != nil {
		loops = append(loops, e.eng.ingress)
	} else {
		e.eng.eventLoops.iterate(func(_ int, el *eventloop) bool {
			loops = append(loops, el)
			return true
		})
	}
	done := make(chan error, len(loops))
	for _, el := range loops {
		el := el
		err := el.poller.Trigger(queue.HighPriority, func(any) error {
			done <- el.stopAccepting()
			return nil
		}, nil)
		if err != nil {
			return fmt.Errorf("stop accepting: %w", err)
		}
	}
	var errs []error
	for range loops {
		select {
		case err := <-done:
			errs = append(errs, err)
		case <-ctx.Done():
			return fmt.Errorf("stop accepting: %w", ctx.Err())
		}
	}
	return errors.Join(errs...)
}

// stopAccepting unwatches the loop's listeners. Must run on the loop.
func (el *eventloop) stopAccepting() error {
	if el.acceptStopped {
		return nil
	}
	el.acceptStopped = true
	var errs []error
	for fd := range el.listeners {
		if el.acceptPaused[fd] { // already unwatched for a backoff
			delete(el.acceptPaused, fd)
			continue
		}
		if err := el.poller.Delete(fd); err != nil {
			errs = append(errs, fmt.Errorf("unwatch listener fd %d: %w", fd, err))
		}
	}
	return errors.Join(errs...)
}
