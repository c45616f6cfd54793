//go:build linux

package relay

import (
	"errors"
	"time"

	gio "github.com/panjf2000/gnet/v2/pkg/io"
	gnetpoll "github.com/panjf2000/gnet/v2/pkg/netpoll"
	"golang.org/x/sys/unix"
)

// MaxAwait is the most bytes await waits for: a greeting's worth (RFB's
// ProtocolVersion is 12), read into a buffer on the poller's stack.
const MaxAwait = 64

// awaiter is a socket whose first bytes a poller waits for (await). Poller
// goroutine only.
type awaiter struct {
	fd       int
	gen      int32
	need     int
	got      []byte
	deadline time.Time
	done     func(fd int, got []byte, err error)
}

// await waits on a poller, with no goroutine, until fd (a connected
// non-blocking socket the caller hands over) has said at least n bytes
// (n <= MaxAwait) beyond got, those already read from it; or until it ends
// or fails, or deadline passes. Then done runs on the poller goroutine, must
// not block, and gets the socket back (deregistered, the caller's again)
// with everything read so far; what the peer said or did not say is the
// caller's protocol to judge (a read of fd then sees the end, or the
// caller's own deadline runs out). Only if the relay is closing is the
// socket closed and done called with fd -1 and an error.
func (r *Relay) await(fd int, got []byte, n int, deadline time.Time, poller int, done func(fd int, got []byte, err error)) {
	if n > MaxAwait {
		n = MaxAwait
	}
	if len(got) >= n {
		done(fd, got, nil)
		return
	}
	p := r.pick(poller)
	r.opening.Add(1) // a session waiting for its host, as in a connect (Opening)
	counted := func(fd int, got []byte, err error) {
		r.opening.Add(-1)
		done(fd, got, err)
	}
	p.command(cmd{a: &awaiter{fd: fd, need: n, got: got, deadline: deadline, done: counted}, op: opAwait})
}

// startAwait registers a for reading; a socket epoll refuses goes back at
// once (its reads will fail the same way).
func (p *Poller) startAwait(a *awaiter) {
	p.gen++
	a.gen = p.gen
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(a.fd), Pad: a.gen}
	if err := gnetpoll.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, a.fd, &ev); err != nil {
		a.done(a.fd, a.got, nil)
		return
	}
	p.awaits[a.fd] = a
}

// readAwait takes what a's socket has, up to what is still needed, so the
// caller reads the rest itself.
func (p *Poller) readAwait(a *awaiter) {
	var buf [MaxAwait]byte
	n, err := gio.Read(a.fd, buf[:a.need-len(a.got)])
	switch {
	case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR):
		return
	case err != nil || n == 0:
		p.endAwait(a) // the caller's read sees the end
		return
	}
	a.got = append(a.got, buf[:n]...)
	if len(a.got) >= a.need {
		p.endAwait(a)
	}
}

// endAwait deregisters a and hands its socket back.
func (p *Poller) endAwait(a *awaiter) {
	delete(p.awaits, a.fd)
	_ = gnetpoll.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, a.fd, nil)
	a.done(a.fd, a.got, nil)
}

// expireAwaits hands back the sockets whose deadline passed.
func (p *Poller) expireAwaits(now time.Time) {
	for _, a := range p.awaits {
		if now.After(a.deadline) {
			p.endAwait(a)
		}
	}
}

// closeAwaits closes the sockets still awaited: the relay is closing.
func (p *Poller) closeAwaits() {
	for _, a := range p.awaits {
		delete(p.awaits, a.fd)
		_ = gio.Close(a.fd)
		a.done(-1, nil, errShutdown)
	}
}
