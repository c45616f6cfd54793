package bench

import (
	"strconv"

	"golang.org/x/sys/unix"
)

// Session lifecycle and output on a loop. Everything here must run on the
// loop goroutine.

const maxBacklog = 1 << 20 // client bytes held for one session before it is failed

// sockBuf is the send and receive buffer of the harness's own sockets
// (client and backend alike).
const sockBuf = 256 << 10

func itoa(n int) string { return strconv.Itoa(n) }

// dial starts queued sessions up to the in-flight bound.
func (l *loop) dial() {
	for l.inflight < l.cl.cfg.MaxInflight && len(l.queue) > 0 {
		s := l.queue[0]
		l.queue = l.queue[1:]
		if len(l.queue) == 0 {
			l.queue = nil
		}
		l.connect(s)
	}
}

func (l *loop) connect(s Session) {
	l.stats.started.Add(1)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		l.errs["socket: "+err.Error()]++
		l.stats.failed.Add(1)
		l.replace(s)
		return
	}
	c := &conn{fd: fd, s: s, start: l.now}
	if fd >= len(l.conns) {
		unix.Close(fd)
		l.errs[errFileLimit.Error()]++
		l.stats.failed.Add(1)
		return
	}
	l.conns[fd], l.inflight = c, l.inflight+1
	unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	// Fixed buffers: thousands of autotuned flat-out streams reach the
	// kernel's tcp_mem pressure limit, and loopback starts dropping.
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, sockBuf)
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, sockBuf)
	if err := unix.Bind(fd, &l.src[l.nextSrc%len(l.src)]); err != nil {
		l.fail(c, "bind: "+err.Error())
		return
	}
	l.nextSrc++
	err = unix.Connect(fd, &l.dst[s.Mode])
	if err != nil && err != unix.EINPROGRESS {
		l.fail(c, "connect: "+err.Error())
		return
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		l.fail(c, "epoll_ctl: "+err.Error())
	}
}

// connected runs on the first event of a connecting socket.
func (l *loop) connected(c *conn) {
	if e, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_ERROR); err != nil || e != 0 {
		l.fail(c, "connect: "+unix.Errno(e).Error())
		return
	}
	if !l.cl.wire.ws {
		l.established(c)
		return
	}
	c.state = stHandshaking
	l.write(c, upgradeRequest(l.cl.cfg.Host, l.cl.cfg.Path(c.s.Token)))
}

// established: the session is up (101 received, or TCP connected).
func (l *loop) established(c *conn) {
	c.state = stOpen
	l.inflight--
	l.stats.opened.Add(1)
	l.stats.live.Add(1)
	if !c.s.Probe {
		l.hs.Record(l.now - c.start)
	}
	switch {
	case c.s.Churn || c.s.Probe:
		l.sendMessage(c)
	case l.stream == streamOn:
		l.pump(c)
	case l.pacing && c.s.Paced:
		l.paced = append(l.paced, c)
	}
}

// fail ends c for a reason other than the harness closing it.
func (l *loop) fail(c *conn, why string) {
	if c.state == stDone {
		return
	}
	l.errs[why]++
	l.stats.failed.Add(1)
	l.release(c)
}

// closeConn ends c on the harness's behalf: an open session says goodbye
// with a close frame; one still opening counts as failed.
func (l *loop) closeConn(c *conn) {
	switch c.state {
	case stDone:
		return
	case stOpen:
		if l.cl.wire.ws && len(c.wbuf) == 0 && !l.midFrame(c) {
			unix.Write(c.fd, l.cl.wire.closeFr)
		}
		l.stats.closed.Add(1)
	default:
		l.errs["not established when closed"]++
		l.stats.failed.Add(1)
	}
	l.release(c)
}

// release closes the socket (epoll forgets it) and, for churn, queues the
// session's successor.
func (l *loop) release(c *conn) {
	if c.state == stOpen {
		l.stats.live.Add(-1)
	} else {
		l.inflight--
	}
	if c.verifyAt > 0 {
		c.verifyAt = 0
		l.stats.verifying.Add(-1)
	}
	c.state = stDone
	l.conns[c.fd] = nil
	unix.Close(c.fd)
	c.wbuf, c.ctlBuf = nil, nil
	l.replace(c.s)
}

func (l *loop) replace(s Session) {
	if s.Churn && l.churning {
		s.Token = l.cl.nextToken()
		l.queue = append(l.queue, s)
	}
}

// sendMessage sends one time-stamped echo message.
func (l *loop) sendMessage(c *conn) {
	l.cl.wire.putStamp(l.scratch, int64(l.now))
	n := int64(l.cl.wire.msgSize)
	c.asked++
	c.sent += n
	l.stats.sent.Add(n)
	l.write(c, l.scratch)
}

// write sends whole frames p (borrowed; what the socket does not take now is
// copied to c.wbuf).
func (l *loop) write(c *conn, p []byte) {
	if len(c.wbuf) == 0 {
		n, err := unix.Write(c.fd, p)
		if err != nil && err != unix.EAGAIN {
			l.fail(c, "write: "+err.Error())
			return
		}
		p = p[max(n, 0):]
	}
	if len(p) == 0 {
		return
	}
	if len(c.wbuf)+len(p) > maxBacklog {
		l.fail(c, "client backlog over 1 MiB")
		return
	}
	c.wbuf = append(c.wbuf, p...)
}

// flush writes c.wbuf and then, while streaming, the stream template.
func (l *loop) flush(c *conn) {
	if l.flushBuf(c) && len(c.wbuf) == 0 && l.stream != streamOff {
		l.pump(c)
	}
}

// flushBuf writes what c.wbuf holds; false when the session failed.
func (l *loop) flushBuf(c *conn) bool {
	for len(c.wbuf) > 0 {
		n, err := unix.Write(c.fd, c.wbuf)
		if err == unix.EAGAIN {
			return true
		}
		if err != nil {
			l.fail(c, "write: "+err.Error())
			return false
		}
		c.wbuf = c.wbuf[:copy(c.wbuf, c.wbuf[n:])]
	}
	return true
}

func (l *loop) midFrame(c *conn) bool {
	return l.cl.wire.ws && c.tplOff%int64(l.cl.wire.unit) != 0
}

// pump writes the stream template until the socket is full; when stopping,
// only up to the end of the current frame. A due pong goes between frames.
func (l *loop) pump(c *conn) {
	w := l.cl.wire
	for c.state == stOpen {
		if c.pongDue && !l.midFrame(c) {
			l.queuePong(c)
			if !l.flushBuf(c) || len(c.wbuf) > 0 {
				return
			}
		}
		if l.stream == streamOff || (l.stream == streamStopping && !l.midFrame(c)) {
			return
		}
		off := int(c.tplOff % int64(len(w.stream)))
		chunk := w.stream[off:]
		if l.stream == streamStopping {
			chunk = chunk[:w.unit-off%w.unit]
		} else if budget := l.streamBudget(c); budget <= 0 {
			l.throttle(c)
			return
		} else if budget < int64(len(chunk)) {
			chunk = chunk[:budget] // wire bytes ≤ payload budget: at most the rate
		}
		n, err := unix.Write(c.fd, chunk)
		if err == unix.EAGAIN {
			return
		}
		if err != nil {
			l.fail(c, "write: "+err.Error())
			return
		}
		p := w.streamPayload(c.tplOff+int64(n)) - w.streamPayload(c.tplOff)
		c.tplOff += int64(n)
		c.sent += p
		l.stats.sent.Add(p)
	}
}

// pace sends the echo messages due by now, spread evenly over the paced
// sessions (one loop-wide schedule, no timer per session).
func (l *loop) pace() {
	if !l.pacing || len(l.paced) == 0 {
		return
	}
	total := int64((l.now - l.paceStart).Seconds() * l.paceRate * float64(len(l.paced)))
	due := min(total-l.paceDone, int64(2*len(l.paced)))
	for ; due > 0; due-- {
		c := l.paced[l.paceNext%len(l.paced)]
		l.paceNext++
		if c.state == stOpen {
			l.sendMessage(c)
		}
	}
	l.paceDone = total
}

// streamBudget is how many more payload bytes c may send at the configured
// stream rate (ClientConfig.StreamRate); flat out, unbounded.
func (l *loop) streamBudget(c *conn) int64 {
	rate := l.cl.cfg.StreamRate
	if rate <= 0 {
		return int64(len(l.cl.wire.stream))
	}
	allowed := int64((l.now - l.streamStart).Seconds() * float64(rate))
	return allowed - (c.sent - c.streamBase)
}

// throttle parks c until the loop's next round gives it budget.
func (l *loop) throttle(c *conn) {
	if !c.throttled {
		c.throttled = true
		l.throttled = append(l.throttled, c)
	}
}

// unthrottle pumps the parked stream sessions again (each round, about
// every 5 ms while any is parked).
func (l *loop) unthrottle() {
	if len(l.throttled) == 0 {
		return
	}
	parked := l.throttled
	l.throttled = nil
	for _, c := range parked {
		c.throttled = false
		if c.state == stOpen && len(c.wbuf) == 0 {
			l.pump(c)
		}
	}
}
