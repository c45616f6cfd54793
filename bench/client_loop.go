package bench

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// loopStats are a loop's counters: written by the loop goroutine, read by
// anyone (progress line, scenario waits).
type loopStats struct {
	started, opened, failed, closed, live atomic.Int64
	sent, recv, msgs, verifying           atomic.Int64
}

// loop is one client event loop: an epoll set of sessions served by one
// goroutine locked to its OS thread (so its CPU can be read apart). Every
// field but stats, tid, mu and cmds is owned by that goroutine.
type loop struct {
	cl    *Client
	epfd  int
	evfd  int // eventfd waking the loop for cmds
	conns []*conn
	buf   []byte // read buffer, borrowed by the parsers during one read
	evs   []unix.EpollEvent
	now   time.Duration // since cl.epoch, read once per wake-up
	quit  bool

	dst      [numModes]unix.SockaddrInet4 // per loop: Connect writes into them
	src      []unix.SockaddrInet4
	nextSrc  int
	queue    []Session // waiting to connect
	inflight int

	scratch []byte // one echo frame being stamped
	rtt, hs *Histogram
	errs    map[string]int

	pacing      bool
	paceRate    float64 // per session
	paceStart   time.Duration
	paceDone    int64
	paced       []*conn
	paceNext    int
	stream      streamState
	streamStart time.Duration // when streaming began (ClientConfig.StreamRate's clock)
	throttled   []*conn       // stream sessions waiting for budget
	churning    bool

	stats loopStats
	tid   atomic.Int64
	mu    sync.Mutex // guards cmds
	cmds  []func()
	done  chan struct{}
}

type streamState uint8

const (
	streamOff streamState = iota
	streamOn
	streamStopping // each session finishes its current frame, then stops
)

var errFileLimit = errors.New("fd beyond the table")

func newLoop(cl *Client) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return nil, err
	}
	l := &loop{cl: cl, epfd: epfd, evfd: evfd, conns: make([]*conn, cl.fdLimit+1),
		buf: make([]byte, 128<<10), evs: make([]unix.EpollEvent, 256),
		scratch: make([]byte, len(cl.wire.msgFrame)), rtt: NewHistogram(), hs: NewHistogram(),
		errs: map[string]int{}, done: make(chan struct{})}
	for m := range numModes {
		a := cl.cfg.Addrs[m]
		if a != nil {
			l.dst[m] = unix.SockaddrInet4{Port: a.Port, Addr: [4]byte(a.IP.To4())}
		}
	}
	for i := range cl.cfg.SourceAddrs {
		l.src = append(l.src, unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, byte(2 + i)}})
	}
	return l, nil
}

// run is the loop goroutine.
func (l *loop) run() {
	runtime.LockOSThread()
	l.tid.Store(int64(unix.Gettid()))
	defer close(l.done)
	for !l.quit {
		n, err := unix.EpollWait(l.epfd, l.evs, l.timeout())
		if err != nil && err != unix.EINTR {
			l.errs["epoll_wait: "+err.Error()]++
			return
		}
		l.now = l.cl.since()
		for i := 0; i < n; i++ {
			l.onEvent(int(l.evs[i].Fd), l.evs[i].Events)
		}
		l.runCmds()
		l.pace()
		l.unthrottle()
		l.dial()
	}
	for _, c := range l.conns {
		if c != nil {
			l.closeConn(c)
		}
	}
	unix.Close(l.epfd)
	unix.Close(l.evfd)
}

func (l *loop) timeout() int {
	switch {
	case l.pacing && len(l.paced) > 0:
		// Wake for the next due message, at most every millisecond.
		gap := 1000 / (l.paceRate * float64(len(l.paced)))
		return int(min(max(gap, 1), 50))
	case len(l.queue) > 0, len(l.throttled) > 0:
		return 5
	}
	return 50
}

// exec runs f on the loop goroutine, soon. Safe from any goroutine.
func (l *loop) exec(f func()) {
	l.mu.Lock()
	l.cmds = append(l.cmds, f)
	l.mu.Unlock()
	var one = [8]byte{1}
	unix.Write(l.evfd, one[:])
}

// call runs f on the loop and waits for it.
func (l *loop) call(f func()) {
	done := make(chan struct{})
	l.exec(func() { f(); close(done) })
	select {
	case <-done:
	case <-l.done:
	}
}

func (l *loop) runCmds() {
	l.mu.Lock()
	cmds := l.cmds
	l.cmds = nil
	l.mu.Unlock()
	for _, f := range cmds {
		f()
	}
}

func (l *loop) onEvent(fd int, ev uint32) {
	if fd == l.evfd {
		var b [8]byte
		unix.Read(l.evfd, b[:])
		return
	}
	c := l.conns[fd]
	if c == nil {
		return
	}
	if c.state == stConnecting {
		l.connected(c)
	}
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 && c.state != stDone {
		l.readAll(c, ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0)
	}
	if ev&unix.EPOLLOUT != 0 && c.state != stDone {
		l.flush(c)
	}
}

// readAll reads until the socket is drained (edge-triggered: a short read
// means drained; a later arrival raises a new edge), or to EOF on a hang-up.
func (l *loop) readAll(c *conn, hup bool) {
	for c.state != stDone {
		n, err := unix.Read(c.fd, l.buf)
		switch {
		case err == unix.EAGAIN:
			return
		case err != nil:
			l.fail(c, "read: "+err.Error())
			return
		case n == 0:
			l.fail(c, "closed by peer")
			return
		}
		l.onData(c, l.buf[:n])
		if n < len(l.buf) && !hup {
			return
		}
	}
}

// onData takes bytes read from c (borrowed: l.buf).
func (l *loop) onData(c *conn, p []byte) {
	switch {
	case c.state == stHandshaking:
		l.onHandshake(c, p)
	case !l.cl.wire.ws:
		l.onPayload(c, p)
	default:
		l.parseFrames(c, p)
	}
}

func (l *loop) onHandshake(c *conn, p []byte) {
	c.head = append(c.head, p...)
	end := indexHeadEnd(c.head)
	if end < 0 {
		if len(c.head) > 8<<10 {
			l.fail(c, "upgrade response too large")
		}
		return
	}
	if code := statusOf(c.head); code != 101 {
		l.fail(c, "http status "+itoa(code))
		return
	}
	rest := c.head[end:]
	c.head = nil
	l.established(c)
	if len(rest) > 0 && c.state == stOpen {
		l.parseFrames(c, rest)
	}
}

// indexHeadEnd is the offset just past the blank line, or -1.
func indexHeadEnd(b []byte) int {
	for i := 3; i < len(b); i++ {
		if b[i] == '\n' && b[i-1] == '\r' && b[i-2] == '\n' && b[i-3] == '\r' {
			return i + 1
		}
	}
	return -1
}
