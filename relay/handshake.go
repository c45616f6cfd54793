package relay

import (
	"errors"
	"time"

	"golang.org/x/sys/unix"
)

// handshake is a CONNECT exchange in progress on a poller: the request is
// written and the answer parsed as its bytes arrive, so no goroutine waits
// for a compute host per session. Poller goroutine only.
type handshake struct {
	fd       int
	gen      int32
	out      []byte // request bytes not yet written
	parser   ConnectParser
	deadline time.Time
	done     func(fd int, first []byte, err error)
}

// Handshake writes request (a CONNECT request, see AppendConnect) to fd, a
// connected non-blocking socket the caller hands over, and reads the answer
// on a poller within timeout. done runs on the poller goroutine, once: with
// the fd handed back (deregistered) and the console bytes that came after the
// answer (a new slice the callee owns), or with an error and fd -1 (the
// socket is closed). request is retained until done runs: do not modify it.
func (r *Relay) Handshake(fd int, request []byte, timeout time.Duration, done func(fd int, first []byte, err error)) {
	p := r.pollers[int(r.next.Add(1))%len(r.pollers)]
	h := &handshake{fd: fd, out: request, deadline: time.Now().Add(timeout), done: done}
	p.command(cmd{h: h, op: opHandshake})
}

// startHandshake registers h: writing its request, then reading.
func (p *Poller) startHandshake(h *handshake) {
	p.gen++
	h.gen = p.gen
	p.shakes[h.fd] = h
	events := uint32(unix.EPOLLIN | unix.EPOLLRDHUP)
	if len(h.out) > 0 {
		events |= unix.EPOLLOUT
	}
	ev := unix.EpollEvent{Events: events, Fd: int32(h.fd), Pad: h.gen}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, h.fd, &ev); err != nil {
		p.endHandshake(h, nil, err)
	}
}

// handleHandshake reacts to epoll events on h.
func (p *Poller) handleHandshake(h *handshake, events uint32) {
	if events&unix.EPOLLOUT != 0 && len(h.out) > 0 {
		n, err := write(h.fd, h.out)
		if err != nil {
			p.endHandshake(h, nil, ErrConnectClosed)
			return
		}
		h.out = h.out[n:]
		if len(h.out) == 0 {
			ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(h.fd), Pad: h.gen}
			_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, h.fd, &ev)
		}
	}
	if events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) == 0 {
		return
	}
	var buf [connectAnswerRead]byte
	n, err := unix.Read(h.fd, buf[:])
	switch {
	case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
		return
	case err != nil || n == 0:
		p.endHandshake(h, nil, ErrConnectClosed)
		return
	}
	done, rest, err := h.parser.Feed(buf[:n])
	switch {
	case err != nil:
		p.endHandshake(h, nil, err)
	case done:
		p.endHandshake(h, append([]byte(nil), rest...), nil)
	}
}

// endHandshake deregisters h and reports; on error the socket is closed.
func (p *Poller) endHandshake(h *handshake, first []byte, err error) {
	if p.shakes[h.fd] != h {
		return
	}
	delete(p.shakes, h.fd)
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, h.fd, nil)
	fd := h.fd
	if err != nil {
		_ = unix.Close(fd)
		fd = -1
	}
	h.done(fd, first, err)
}

// expireHandshakes fails the exchanges past their deadline.
func (p *Poller) expireHandshakes() {
	now := time.Now()
	for _, h := range p.shakes {
		if now.After(h.deadline) {
			p.endHandshake(h, nil, ErrConnectTimeout)
		}
	}
}
