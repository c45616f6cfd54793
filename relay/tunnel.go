//go:build linux

package relay

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	gio "github.com/panjf2000/gnet/v2/pkg/io"
	gnetpoll "github.com/panjf2000/gnet/v2/pkg/netpoll"
	"golang.org/x/sys/unix"
)

// openingTick is how often a poller with openings in progress checks
// their deadlines: far below any --connect-timeout, and a poller waiting
// only for CONNECT answers wakes 20 times a second, not 1,000.
const openingTick = 50 * time.Millisecond

// Words, as this package uses them: "connect" is the TCP connect (a SYN and
// its answer); "CONNECT" is an HTTP CONNECT request and its answer, the
// tunnel a forward proxy or a compute host's internal_access_path opens;
// an "opening" is both, run on a poller. The host's greeting and the RFB
// security handshake come after (open.go).

// opening is a socket a poller is opening: its connect, then its CONNECT
// exchanges, the request written and the answer parsed as its bytes
// arrive, so no goroutine waits for a compute host per session. Poller
// goroutine only.
type opening struct {
	fd         int
	gen        int32
	connecting bool             // the socket's connect is still in progress (openRoute)
	addrs      []netip.AddrPort // addresses not yet tried (openRoute)
	keep       time.Duration    // their sockets' keepalive
	tryUntil   time.Time        // when the connect in progress gives way to the next address
	lastErr    error            // why the last address failed
	ended      bool
	requests   [][]byte
	step       int    // the request being exchanged
	out        []byte // its bytes not yet written
	parser     ConnectParser
	deadline   time.Time
	done       func(fd int, first []byte, err error)
}

// tunnelError is how an opening failed and at which request of its chain
// (step, from 0; a forward proxy's CONNECT is step 0). Unwrap gives
// ErrUnreachable (no address connected), ErrConnectRefused (wrapped with the
// status code), ErrConnectMalformed, ErrConnectTooLarge, ErrConnectClosed,
// ErrConnectTimeout, or another error if the relay is closing.
type tunnelError struct {
	step int
	err  error
}

func (e *tunnelError) Error() string { return e.err.Error() }

// Unwrap returns the cause.
func (e *tunnelError) Unwrap() error { return e.err }

// tunnel exchanges requests (CONNECT requests, see AppendConnect and
// ForwardProxy.AppendProxyConnect; a forward proxy's first) one after the
// other on fd, a connected non-blocking socket the caller hands over: a
// poller writes each and reads its answer with ConnectParser, all within
// timeout; no goroutine blocks meanwhile. Bytes after an answer's head are
// console data only after the last one; before that they are
// ErrConnectMalformed. done runs once, on the poller goroutine, and must not
// block: with the fd handed back (deregistered, owned by the caller again)
// and the console bytes that came after the last answer's head (a new slice
// done owns, nil if none), or with a *tunnelError and fd -1 (the socket is
// closed). requests are retained until done runs: do not modify them.
func (r *Relay) tunnel(fd int, requests [][]byte, timeout time.Duration, done func(fd int, first []byte, err error)) {
	r.startOpening(&opening{fd: fd, requests: requests, deadline: time.Now().Add(timeout), done: done}, r.pick(-1), false)
}

// openRoute is tunnel on a socket a poller opens itself along rt
// (resolveRoute): the poller connects to rt's addresses one after the
// other, then exchanges the forward proxy's CONNECT request if rt has one
// and then requests (none is fine), all within timeout; no goroutine waits
// meanwhile. An address whose connect fails goes on to the next at once; one
// that does not answer gives way to the next after its share of the time
// left (attemptDeadline). When none connects, the error is a *tunnelError
// wrapping ErrUnreachable. p is the poller (Target.Poller); onDriver says
// the caller is the goroutine that drives it (Target.OnDriver).
func (r *Relay) openRoute(rt route, requests [][]byte, timeout time.Duration, p *Poller, onDriver bool, done func(fd int, first []byte, err error)) {
	if rt.proxy != nil {
		requests = append([][]byte{rt.proxy}, requests...)
	}
	r.startOpening(&opening{fd: -1, requests: requests, deadline: time.Now().Add(timeout), done: done,
		connecting: true, addrs: rt.addrs, keep: rt.keep, lastErr: errNoAddress}, p, onDriver)
}

// errNoAddress is a route's failure before any address was tried (one
// value: no allocation per handshake).
var errNoAddress = errors.New("no address")

func (r *Relay) startOpening(h *opening, p *Poller, onDriver bool) {
	if len(h.requests) > 0 {
		h.out = h.requests[0]
	}
	r.opening.Add(1)
	done := h.done
	h.done = func(fd int, first []byte, err error) {
		r.opening.Add(-1)
		done(fd, first, err)
	}
	p.submit(cmd{h: h, op: opOpen}, onDriver)
}

// startOpening writes what the socket takes of h's request at once (a
// fresh connection takes it all) and registers h for the rest and the answer.
func (p *Poller) startOpening(h *opening) {
	if h.connecting {
		p.dialNext(h)
		return
	}
	p.gen++
	h.gen = p.gen
	p.openings[h.fd] = h
	if len(h.requests) == 0 {
		p.endOpening(h, nil, nil) // nothing to exchange
		return
	}
	if !p.writeRequest(h) {
		return
	}
	ev := unix.EpollEvent{Events: h.interest(), Fd: int32(h.fd), Pad: h.gen}
	if err := gnetpoll.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, h.fd, &ev); err != nil {
		p.endOpening(h, nil, err)
	}
}

// interest is the epoll interest of h: reading, and writing while request
// bytes are left.
func (h *opening) interest() uint32 {
	if len(h.out) > 0 {
		return unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLOUT
	}
	return unix.EPOLLIN | unix.EPOLLRDHUP
}

// writeRequest writes what it can of h's request; false means h ended.
func (p *Poller) writeRequest(h *opening) bool {
	if len(h.out) == 0 {
		return true
	}
	n, err := write(h.fd, h.out)
	if err != nil {
		p.endOpening(h, nil, ErrConnectClosed)
		return false
	}
	h.out = h.out[n:]
	return true
}

// dialNext opens a socket to h's next address and starts its connect
// (EPOLLOUT tells its outcome); an address whose connect fails at once
// (no route, no socket) gives way to the next. With none left, h ends.
func (p *Poller) dialNext(h *opening) {
	for len(h.addrs) > 0 {
		ap := h.addrs[0]
		h.addrs = h.addrs[1:]
		fd, err := connectNonblocking(ap, h.keep, p.cfg.WriteTimeout <= 0) // Attach sets TCP_USER_TIMEOUT otherwise
		if err != nil {
			h.lastErr = err
			continue
		}
		p.gen++
		h.fd, h.gen = fd, p.gen
		h.tryUntil = attemptDeadline(time.Now(), h.deadline, 1+len(h.addrs))
		p.openings[fd] = h
		ev := unix.EpollEvent{Events: unix.EPOLLOUT, Fd: int32(fd), Pad: h.gen}
		if err := gnetpoll.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			p.endOpening(h, nil, err)
		}
		return
	}
	p.endOpening(h, nil, unreachable(h.lastErr))
}

// nextAddress gives up h's connect in progress (it failed with err, or its
// share of the time ran out) and tries the next address, if there is one
// and time is left.
func (p *Poller) nextAddress(h *opening, err error) {
	h.lastErr = err
	if len(h.addrs) == 0 || !time.Now().Before(h.deadline) {
		p.endOpening(h, nil, unreachable(err))
		return
	}
	delete(p.openings, h.fd)
	_ = gnetpoll.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, h.fd, nil)
	_ = gio.Close(h.fd)
	h.fd = -1
	p.dialNext(h)
}

// unreachable is the failure of a connect: ErrUnreachable with the last
// address's reason.
func unreachable(err error) error {
	if errors.Is(err, ErrUnreachable) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrUnreachable, err)
}

// connectError is the error a failed non-blocking connect left on fd
// (SO_ERROR), or why it could not be read.
func connectError(fd int) error {
	soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err == nil && soerr != 0 {
		err = unix.Errno(soerr)
	}
	return err
}

// errAttemptTimedOut is an address that did not answer within its share.
var errAttemptTimedOut = errors.New("connect timed out")

// connected finishes h's connect once epoll reports the socket writable
// (or failed): then the exchange starts, or h ends if it has none. A
// connect that completed is reported writable without EPOLLERR or EPOLLHUP
// (the socket holds no error), so SO_ERROR is asked only when one is set:
// one system call less per session.
func (p *Poller) connected(h *opening, events uint32) {
	var err error
	if events&unix.EPOLLOUT == 0 || events&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
		err = connectError(h.fd)
	}
	if err != nil {
		p.nextAddress(h, err)
		return
	}
	h.connecting = false
	if len(h.requests) == 0 {
		p.endOpening(h, nil, nil)
		return
	}
	if !p.writeRequest(h) {
		return
	}
	ev := unix.EpollEvent{Events: h.interest(), Fd: int32(h.fd), Pad: h.gen}
	if err := gnetpoll.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, h.fd, &ev); err != nil {
		p.endOpening(h, nil, err)
	}
}

// handleOpening reacts to epoll events on h.
func (p *Poller) handleOpening(h *opening, events uint32) {
	if h.connecting {
		p.connected(h, events) // EPOLLOUT, or ERR/HUP
		return
	}
	if events&unix.EPOLLOUT != 0 && len(h.out) > 0 {
		if !p.writeRequest(h) {
			return
		}
		if len(h.out) == 0 {
			ev := unix.EpollEvent{Events: h.interest(), Fd: int32(h.fd), Pad: h.gen}
			_ = gnetpoll.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, h.fd, &ev)
		}
	}
	if events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		p.readAnswer(h)
	}
}

// readAnswer feeds one read of the answer to h's parser. The buffer is on
// the poller's stack: nothing is allocated unless console bytes follow the
// head in the same read (they are copied for done).
func (p *Poller) readAnswer(h *opening) {
	var buf [connectAnswerRead]byte
	n, err := gio.Read(h.fd, buf[:])
	switch {
	case err == unix.EAGAIN || err == unix.EINTR:
		return
	case err != nil || n == 0:
		p.endOpening(h, nil, ErrConnectClosed)
		return
	}
	done, rest, err := h.parser.Feed(buf[:n])
	switch {
	case err != nil:
		p.endOpening(h, nil, err)
	case !done:
	case h.step+1 < len(h.requests):
		p.nextRequest(h, len(rest))
	case len(rest) > 0:
		p.endOpening(h, append([]byte(nil), rest...), nil)
	default:
		p.endOpening(h, nil, nil)
	}
}

// nextRequest goes on to the next request of h's chain once an answer is
// complete; extra bytes after that answer mean the peer is not waiting for
// it.
func (p *Poller) nextRequest(h *opening, extra int) {
	if extra > 0 {
		p.endOpening(h, nil, ErrConnectMalformed)
		return
	}
	h.step++
	h.out, h.parser = h.requests[h.step], ConnectParser{}
	if !p.writeRequest(h) {
		return
	}
	if len(h.out) > 0 {
		ev := unix.EpollEvent{Events: h.interest(), Fd: int32(h.fd), Pad: h.gen}
		_ = gnetpoll.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, h.fd, &ev)
	}
}

// endOpening deregisters h and reports; on error the socket is closed.
func (p *Poller) endOpening(h *opening, first []byte, err error) {
	if h.ended {
		return
	}
	h.ended = true
	fd := h.fd
	if fd >= 0 { // -1: no address could be connected to
		delete(p.openings, fd)
		_ = gnetpoll.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil) // ENOENT if never added
	}
	if err != nil {
		if fd >= 0 {
			_ = gio.Close(fd)
		}
		fd = -1
		err = &tunnelError{step: h.step, err: err}
	}
	h.done(fd, first, err)
}

// expireOpenings fails the exchanges past their deadline.
func (p *Poller) expireOpenings() {
	now := time.Now()
	for _, h := range p.openings {
		switch {
		case h.connecting && now.After(h.tryUntil):
			p.nextAddress(h, errAttemptTimedOut) // ends h past its deadline
		case !now.After(h.deadline):
		case h.connecting:
			p.endOpening(h, nil, unreachable(errAttemptTimedOut))
		default:
			p.endOpening(h, nil, ErrConnectTimeout)
		}
	}
}

// untilTick lowers the poller's epoll timeout (ms, -1 for none) to
// reach the next deadline check, rounded up so the poller never spins
// before it.
func untilTick(timeout int, next time.Time) int {
	ms := msUntil(next)
	if timeout < 0 || ms < timeout {
		return ms
	}
	return timeout
}
