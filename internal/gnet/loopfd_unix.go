// consoleproxy patch (PATCH.md): one more descriptor per event loop, polled
// with the loop's connections, whose readiness runs a function on the loop.

//go:build linux

package gnet

import "github.com/panjf2000/gnet/v2/pkg/netpoll"

// LoopFD names a descriptor for event loop idx (el) to poll level-triggered
// for reading beside its connections, and the function the loop runs, on
// its own goroutine, whenever it is readable (consoleproxy: each loop
// drives the relay poller holding its sessions' compute-host sockets, an
// epoll descriptor nested in the loop's). Called once per loop before the
// loops start; an error stops the engine's start.
type LoopFD func(el EventLoop, idx int) (fd int, ready func(), err error)

// WithLoopFD sets Options.LoopFD.
func WithLoopFD(f LoopFD) Option {
	return func(opts *Options) {
		opts.LoopFD = f
	}
}

// attachLoopFD registers el's extra descriptor, if the options name one.
func (el *eventloop) attachLoopFD() error {
	el.extraFD = -1
	f := el.engine.opts.LoopFD
	if f == nil {
		return nil
	}
	fd, ready, err := f(el, el.idx)
	if err != nil {
		return err
	}
	if err := el.poller.AddRead(&netpoll.PollAttachment{FD: fd}, false); err != nil {
		return err
	}
	el.extraFD, el.extraReady = fd, ready
	return nil
}
