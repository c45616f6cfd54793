//go:build linux

package relay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	gio "github.com/panjf2000/gnet/v2/pkg/io"
	gnetpoll "github.com/panjf2000/gnet/v2/pkg/netpoll"
	"github.com/valyala/bytebufferpool"
	"golang.org/x/sys/unix"
)

// resampleEvery is the poller's tick while any session is paused; each
// paused session is asked for a fresh sample after resampleMin, then at
// doubling intervals up to resampleMax while its client stays slow: a
// client that drains fast resumes within about a millisecond, a stalled one
// costs a sample every 16 ms. (Formerly a flat 10 ms, which capped a session
// whose client's socket buffer is small, such as a TLS bridge, near 25 MB/s.)
const (
	resampleMin = time.Millisecond
	resampleMax = 16 * time.Millisecond
)

// resampleEvery is how often a poller asks paused sessions for a fresh
// sample of their client's outbound buffer (gnet has no "drained" hook).
const resampleEvery = resampleMin

type op uint8

const (
	opNop op = iota // wakes the poller (shutdown)
	opAdd
	opResume
	opWantWrite
	opClose
	opCloseWrite
	opOpen
	opAwait
)

// flushTimeout bounds how long a socket closed with CloseWrite may take to
// hand its held-back bytes to the host.
const flushTimeout = 5 * time.Second

// maxSpareCmds is the largest command queue kept for the next batch; a
// bigger one (a burst of thousands of sessions) is left to the collector.
const maxSpareCmds = 1024

type cmd struct {
	c  *Conn
	h  *opening
	a  *awaiter
	op op
}

// Poller owns compute-host sockets on one goroutine with level-triggered
// epoll. Other goroutines talk to it through commands and an eventfd; the
// goroutine that drives a driven poller applies its own at once (submit).
type Poller struct {
	cfg  Config
	epfd int
	evfd int

	mu       sync.Mutex // guards cmds, stop
	cmds     []cmd
	stop     bool
	done     chan struct{}
	spare    []cmd                      // poller goroutine only from here on: the queue not in use
	buf      *bytebufferpool.ByteBuffer // the next read's buffer (read)
	gen      int32
	conns    fdTable[Conn]
	slow     map[*Conn]struct{}  // paused connections
	flushing map[*Conn]time.Time // closed with CloseWrite: the deadline for their held-back bytes
	openings map[int]*opening    // CONNECT exchanges in progress
	awaits   map[int]*awaiter    // sockets whose first bytes are awaited (await.go)
	writers  map[*Conn]struct{}  // holding bytes the host has not taken (write timeout)

	// TLS legs (hosttls.go): sessions whose crypto/tls may hold records
	// already read from the socket, read again after each round of events;
	// and those whose read buffers are let go once idle.
	ready, readySpare []*Conn
	trims             map[*Conn]struct{}

	// The loop's clocks: the next resample, deadline tick and idle trim.
	next, nextTick, nextTrim time.Time
	events                   []unix.EpollEvent

	// A driven poller (Config.Driven) runs on its caller's goroutine
	// (Poll); its deadlines wake that caller through a timerfd in the epoll
	// set, armed for the earliest one.
	driven  bool
	tfd     int       // the timerfd; -1 unless driven
	armedAt time.Time // when tfd fires; zero: not armed
	closed  bool      // closeAll ran
	polling bool      // a driven poller's driver is inside Poll
	driving bool      // ... inside Poll, or applying a command at once (onDriver)
}

func newPoller(cfg Config, driven bool) (*Poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		gio.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}
	if err := gnetpoll.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		gio.Close(epfd)
		gio.Close(evfd)
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	p := &Poller{cfg: cfg, epfd: epfd, evfd: evfd, tfd: -1, done: make(chan struct{}),
		slow: map[*Conn]struct{}{}, flushing: map[*Conn]time.Time{}, openings: map[int]*opening{},
		awaits:  map[int]*awaiter{},
		writers: map[*Conn]struct{}{}, trims: map[*Conn]struct{}{},
		events: make([]unix.EpollEvent, 256), driven: driven}
	now := time.Now()
	p.next, p.nextTick, p.nextTrim = now.Add(resampleEvery), now.Add(openingTick), now.Add(tlsIdleTrim)
	if !driven {
		go p.run()
		return p, nil
	}
	tfd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err == nil {
		ev = unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(tfd)}
		if err = gnetpoll.EpollCtl(epfd, unix.EPOLL_CTL_ADD, tfd, &ev); err != nil {
			gio.Close(tfd)
		}
	}
	if err != nil {
		gio.Close(epfd)
		gio.Close(evfd)
		return nil, fmt.Errorf("timerfd: %w", err)
	}
	p.tfd = tfd
	return p, nil
}

// Fd is a driven poller's epoll descriptor: readable whenever Poll has
// work (socket events, commands, a deadline passed). The caller polls it,
// level-triggered, beside its own descriptors (gnet's Options.LoopFD).
func (p *Poller) Fd() int { return p.epfd }

// Poll runs what is ready on a driven poller, without blocking, on the
// goroutine that drives it: the only one that may call Poll, and the one
// its sinks' methods run on. After Relay.Close it does nothing.
func (p *Poller) Poll() {
	if p.closed {
		return
	}
	p.polling, p.driving = true, true
	stopped := p.iterate(0)
	p.polling, p.driving = false, false
	if stopped {
		return
	}
	p.arm(p.timeout())
}

// arm sets the timerfd to fire in timeout ms (0: at once), unless it is
// already set to fire no later; -1 leaves it (a needless firing costs one
// Poll that finds nothing due). Driven pollers only.
func (p *Poller) arm(timeout int) {
	if timeout < 0 {
		return
	}
	d := time.Duration(timeout) * time.Millisecond
	at := time.Now().Add(d)
	if !p.armedAt.IsZero() && !p.armedAt.After(at) {
		return
	}
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(max(int64(d), 1))}
	if err := unix.TimerfdSettime(p.tfd, 0, &spec, nil); err != nil {
		panic(fmt.Sprintf("relay: timerfd_settime: %v", err)) // only EBADF/EFAULT/EINVAL: a bug
	}
	p.armedAt = at
}

// command queues c for the poller goroutine and wakes it. Only the command
// that finds the queue empty writes the eventfd: the others join a queue
// whose wake-up is written or on its way, and the poller reads the eventfd
// before it takes the queue, so none is left behind (one write per batch,
// not per command).
func (p *Poller) command(c cmd) {
	p.mu.Lock()
	wake := len(p.cmds) == 0
	p.cmds = append(p.cmds, c)
	p.mu.Unlock()
	if !wake {
		return
	}
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	_, _ = unix.Write(p.evfd, one[:])
}

// submit is command, or for a caller on the goroutine that drives p
// (onDriver: a driven poller; the loop whose sessions p holds) c applied at
// once, no queue, no eventfd write and no second pass of the caller's poll.
// Inside Poll, or inside another command applied so, only a command that
// touches nothing in use there (a new socket, a new opening) is; the others
// are queued as from any goroutine, and run in the same Poll. A poller that
// is not driven queues every command.
func (p *Poller) submit(c cmd, onDriver bool) {
	if !onDriver || !p.driven || p.closed || (p.driving && c.op != opAdd && c.op != opOpen) {
		p.command(c)
		return
	}
	was := p.driving
	p.driving = true
	p.apply(c)
	p.driving = was
	if !was { // as Poll ends: a deadline c set wakes the driver
		p.runClocks()
		p.arm(p.timeout())
	}
}

// msUntil is epoll_wait's timeout for a deadline: whole milliseconds rounded
// up, so a deadline less than a millisecond away sleeps instead of polling
// with 0 in a busy loop until it passes.
func msUntil(deadline time.Time) int { return ceilMillis(time.Until(deadline)) }

func ceilMillis(d time.Duration) int {
	return max(0, int((d+time.Millisecond-1)/time.Millisecond))
}

// shutdown stops the poller after closing every socket it owns: through
// its goroutine, or for a driven poller on the caller's (whose driver must
// have stopped calling Poll).
func (p *Poller) shutdown() {
	p.mu.Lock()
	p.stop = true
	p.mu.Unlock()
	if p.driven {
		if !p.closed {
			p.runCommands()
			p.closeAll()
		}
		return
	}
	p.command(cmd{op: opNop})
	<-p.done
}

func (p *Poller) run() {
	defer close(p.done)
	for !p.iterate(p.timeout()) {
	}
}

// timeout is how long the next epoll_wait may sleep (ms; -1: until an
// event): until the earliest of the clocks that have work.
func (p *Poller) timeout() int {
	timeout := -1
	if len(p.slow) > 0 || len(p.flushing) > 0 {
		timeout = msUntil(p.next)
	}
	if p.ticking() {
		timeout = untilTick(timeout, p.nextTick)
	}
	if len(p.trims) > 0 {
		timeout = untilTick(timeout, p.nextTrim)
	}
	if len(p.ready) > 0 {
		timeout = 0
	}
	return timeout
}

// iterate waits up to timeout ms for events, handles them and then the
// clocks that are due. It reports whether the poller stopped (every
// socket closed).
func (p *Poller) iterate(timeout int) (stopped bool) {
	events := p.events
	var n int
	var err error
	if timeout == 0 {
		n, err = gnetpoll.EpollWaitNow(p.epfd, events) // a driven poller's Poll
	} else {
		n, err = unix.EpollWait(p.epfd, events, timeout)
	}
	if err != nil && !errors.Is(err, unix.EINTR) {
		panic(fmt.Sprintf("relay: epoll_wait: %v", err)) // only EBADF/EFAULT/EINVAL: a bug
	}
	for i := 0; i < n; i++ {
		ev := events[i]
		switch fd := int(ev.Fd); {
		case fd == p.evfd:
			if p.runCommands() {
				p.closeAll()
				return true
			}
		case fd == p.tfd:
			var buf [8]byte
			_, _ = unix.Read(p.tfd, buf[:])
			p.armedAt = time.Time{}
		default:
			if c := p.conns.get(fd); c != nil && c.gen == ev.Pad {
				p.handle(c, ev.Events)
			} else if h := p.openings[fd]; h != nil && h.gen == ev.Pad {
				p.handleOpening(h, ev.Events)
			} else if a := p.awaits[fd]; a != nil && a.gen == ev.Pad {
				p.readAwait(a)
			}
		}
	}
	if len(p.ready) > 0 {
		p.readQueued()
	}
	p.runClocks()
	return false
}

// runClocks runs what the poller's clocks have due: the idle trim, the
// resample and flush expiry, the deadlines of openings, writers and awaits.
func (p *Poller) runClocks() {
	if len(p.trims) > 0 && !time.Now().Before(p.nextTrim) {
		p.trimIdle()
		p.nextTrim = time.Now().Add(tlsIdleTrim)
	}
	if (len(p.slow) > 0 || len(p.flushing) > 0) && !time.Now().Before(p.next) {
		p.resample()
		p.expireFlushing()
		p.next = time.Now().Add(resampleEvery)
	}
	if p.ticking() && !time.Now().Before(p.nextTick) {
		p.expireOpenings()
		p.expireWriters()
		p.expireAwaits(time.Now())
		p.nextTick = time.Now().Add(openingTick)
	}
}

// runCommands drains the eventfd and applies queued commands. It reports
// whether the poller must stop.
func (p *Poller) runCommands() bool {
	var buf [8]byte
	_, _ = unix.Read(p.evfd, buf[:])
	p.mu.Lock()
	cmds, stop := p.cmds, p.stop
	p.cmds = p.spare[:0] // the two queues take turns: no allocation per batch
	p.mu.Unlock()
	for _, c := range cmds {
		p.apply(c)
	}
	if cap(cmds) <= maxSpareCmds {
		clear(cmds)
		p.spare = cmds[:0]
	}
	return stop
}

func (p *Poller) apply(c cmd) {
	switch c.op {
	case opNop:
	case opAdd:
		p.gen++
		c.c.gen = p.gen
		p.conns.set(c.c.fd, c.c)
		if c.c.gone.Load() {
			p.finish(c.c, nil)
			return
		}
		p.update(c.c)
		if c.c.tls != nil { // bytes crypto/tls read ahead in the handshake
			c.c.tls.w.more = true
			p.queueRead(c.c)
		}
	case opResume:
		p.resume(c.c)
	case opWantWrite:
		if p.conns.get(c.c.fd) == c.c {
			c.c.wantOut = true
			p.writers[c.c] = struct{}{}
			p.update(c.c)
		}
	case opClose:
		if p.conns.get(c.c.fd) == c.c {
			p.finish(c.c, nil)
		} else {
			c.c.closeFD() // never started
		}
	case opCloseWrite:
		p.closeWrite(c.c)
	case opOpen:
		p.startOpening(c.h)
	case opAwait:
		p.startAwait(c.a)
	}
}

// handle reacts to epoll events on c.
func (p *Poller) handle(c *Conn, events uint32) {
	if events&unix.EPOLLOUT != 0 && !p.flush(c) {
		return
	}
	if events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) == 0 {
		return
	}
	if c.paused {
		// Still registered for EPOLLOUT; HUP and ERR are reported anyway and
		// level-triggered. Deregister until resumed; the read then sees them.
		c.wantOut = false
		p.update(c)
		return
	}
	p.read(c)
}

// read takes one read of host data into the poller's buffer and hands it
// to the sink: the buffer itself, or a copy of a small read (copyMax).
func (p *Poller) read(c *Conn) {
	if c.tls != nil {
		p.readTLS(c)
		return
	}
	if p.buf == nil {
		p.buf = getBuffer(p.cfg.ReadSize)
	}
	b := p.buf
	n, err := gio.Read(c.fd, b.B[Headroom:])
	for errors.Is(err, unix.EINTR) {
		n, err = gio.Read(c.fd, b.B[Headroom:])
	}
	switch {
	case errors.Is(err, unix.EAGAIN):
	case err != nil:
		p.finish(c, err)
	case n == 0:
		p.finish(c, nil)
	default:
		c.inflight.Add(int64(n))
		if c.gone.Load() {
			return
		}
		if n <= copyMax {
			b = smallCopy(b.B[Headroom : Headroom+n])
		} else {
			p.buf = nil // handed over
		}
		c.sink.HostData(b, n)
		if c.buffered() > p.cfg.HighWater {
			p.pause(c)
		}
	}
}

// flush writes held-back bytes when the host is writable; false means c
// is finished.
func (p *Poller) flush(c *Conn) bool {
	done, err := c.flush()
	if err != nil {
		p.finish(c, err)
		return false
	}
	if done && c.gone.Load() {
		p.finish(c, nil) // CloseWrite: everything reached the host
		return false
	}
	if done {
		c.wantOut = false
		delete(p.writers, c)
		p.update(c)
		if !c.gone.Load() {
			c.sink.HostWritable()
		}
	}
	return true
}

func (p *Poller) pause(c *Conn) {
	c.paused = true
	c.pausedFlag.Store(true)
	c.sampleEvery, c.nextSample = resampleMin/2, time.Now().Add(resampleMin)
	p.slow[c] = struct{}{}
	p.update(c)
}

func (p *Poller) resume(c *Conn) {
	c.resumeAsked.Store(false)
	if !c.paused || p.conns.get(c.fd) != c || c.gone.Load() {
		return
	}
	c.paused = false
	c.pausedFlag.Store(false)
	delete(p.slow, c)
	c.wantOut = c.Pending() > 0
	p.update(c)
	p.queueRead(c)
}

// resample asks every paused session for a fresh outbound sample and
// resumes those already below the low watermark.
func (p *Poller) resample() {
	now := time.Now()
	for c := range p.slow {
		if c.buffered() <= p.cfg.LowWater {
			p.resume(c)
			continue
		}
		if c.gone.Load() || now.Before(c.nextSample) {
			continue
		}
		c.sampleEvery = min(2*c.sampleEvery, resampleMax)
		c.nextSample = now.Add(c.sampleEvery)
		c.sink.Resample()
	}
}

// update registers c's interest with epoll: reading unless paused, writing
// while bytes are held back.
func (p *Poller) update(c *Conn) {
	var want uint32
	if !c.paused {
		want = unix.EPOLLIN | unix.EPOLLRDHUP
	}
	if c.wantOut {
		want |= unix.EPOLLOUT
	}
	if want == c.events {
		return
	}
	ev := unix.EpollEvent{Events: want, Fd: int32(c.fd), Pad: c.gen}
	var err error
	switch {
	case c.events == 0:
		err = gnetpoll.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, c.fd, &ev)
	case want == 0:
		err = gnetpoll.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
	default:
		err = gnetpoll.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, c.fd, &ev)
	}
	if err != nil {
		p.finish(c, fmt.Errorf("epoll_ctl: %w", err))
		return
	}
	c.events = want
}

// finish deregisters and closes c and tells the sink, unless it is gone.
func (p *Poller) finish(c *Conn, err error) {
	if p.conns.get(c.fd) != c {
		return
	}
	// No EPOLL_CTL_DEL: closing the fd below removes it from the epoll set
	// (nothing dups a host socket), one syscall less per session.
	c.events = 0
	p.conns.del(c.fd)
	delete(p.slow, c)
	delete(p.flushing, c)
	delete(p.writers, c)
	delete(p.trims, c)
	c.closeFD()
	if !c.gone.Swap(true) {
		c.sink.HostClosed(err)
	}
}

func (p *Poller) closeAll() {
	p.conns.all(func(c *Conn) { p.finish(c, errShutdown) })
	for _, h := range p.openings {
		p.endOpening(h, nil, errShutdown)
	}
	p.closeAwaits()
	p.closed = true
	gio.Close(p.epfd)
	gio.Close(p.evfd)
	if p.tfd >= 0 {
		gio.Close(p.tfd)
	}
}

var errShutdown = errors.New("relay shutting down")

// closeWrite closes c once its held-back bytes are written (or flushTimeout
// passes); reading stops at once.
func (p *Poller) closeWrite(c *Conn) {
	if p.conns.get(c.fd) != c {
		c.closeFD() // never started: nothing was ever held back
		return
	}
	if c.tls != nil {
		if err := c.closeNotify(); err != nil {
			p.finish(c, err)
			return
		}
	}
	if c.Pending() == 0 {
		p.finish(c, nil)
		return
	}
	c.paused, c.wantOut = true, true
	delete(p.slow, c)
	p.flushing[c] = time.Now().Add(flushTimeout)
	p.update(c)
}

// ticking reports whether the poller has deadlines to check every
// openingTick: CONNECT exchanges, awaited greetings, or hosts holding
// bytes under a write timeout.
func (p *Poller) ticking() bool {
	return len(p.openings) > 0 || len(p.awaits) > 0 || (len(p.writers) > 0 && p.cfg.WriteTimeout > 0)
}

// expireWriters closes host sockets that took no byte for the write
// timeout while bytes were held for them.
func (p *Poller) expireWriters() {
	if p.cfg.WriteTimeout <= 0 {
		return
	}
	now := time.Now()
	for c := range p.writers {
		if c.stalled(now, p.cfg.WriteTimeout) {
			p.finish(c, ErrWriteTimeout)
		}
	}
}

// expireFlushing closes sockets whose host has not taken their last bytes
// in time.
func (p *Poller) expireFlushing() {
	now := time.Now()
	for c, deadline := range p.flushing {
		if now.After(deadline) {
			p.finish(c, nil)
		}
	}
}
