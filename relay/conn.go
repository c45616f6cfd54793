//go:build linux

package relay

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	gio "github.com/panjf2000/gnet/v2/pkg/io"
	"github.com/valyala/bytebufferpool"
	"golang.org/x/sys/unix"
)

// Sink is the client side of a session as relay sees it. Its methods are
// called on the poller goroutine and must not block.
type Sink interface {
	// HostData hands over n bytes read from the host, in
	// b.B[Headroom:Headroom+n]. The sink owns b from now on: it releases it
	// with PutBuffer once sent, and calls Conn.Ack(n, …) when the client side
	// has taken the bytes, so reading can go on.
	HostData(b *bytebufferpool.ByteBuffer, n int)
	// HostWritable reports that bytes held back for the host were written
	// and Conn.Pending is zero again: the client side may resume.
	HostWritable()
	// HostClosed reports the end of the host socket: err is nil for an
	// orderly close (EOF). No other method is called afterwards.
	HostClosed(err error)
	// Resample asks for a fresh Conn.SetOutbound while reading is paused
	// (the client's outbound buffer drains without telling anyone).
	Resample()
}

// Conn is a compute-host socket owned by a Poller.
//
// Ownership: the poller goroutine reads the socket and is the only one to
// close it; the client's event loop writes to it under mu. Fields are grouped
// by the goroutine that owns them.
type Conn struct {
	fd   int
	gen  int32
	p    *Poller
	sink Sink
	tls  *TLSClient // the VeNCrypt leg's records (hosttls.go); nil for a plain socket

	// Any goroutine.
	inflight    atomic.Int64 // bytes handed to the sink, not yet acknowledged
	outbound    atomic.Int64 // the client's outbound buffer, as last sampled
	pausedFlag  atomic.Bool  // mirror of paused for other goroutines
	resumeAsked atomic.Bool
	gone        atomic.Bool // Close was called: the sink hears nothing more

	// Guarded by mu: writes toward the host and closing the fd.
	mu     sync.Mutex
	closed bool
	wbuf   *bytebufferpool.ByteBuffer // bytes the host has not taken yet
	// heldSince is when the host last took bytes while wbuf held some
	// (or when wbuf filled); the write timeout runs from it.
	heldSince time.Time

	// Poller goroutine only.
	sampleEvery time.Duration // current interval between samples while paused
	nextSample  time.Time
	paused      bool
	wantOut     bool
	events      uint32 // registered epoll interest; 0 means not registered
}

// Write writes iov toward the host now, as far as the socket takes it, and
// keeps the rest (copied) to be written when the host is writable. It returns
// the bytes still pending; the caller should hold further client input back
// while that is non-zero (Sink.HostWritable says when it is zero again).
// iov is not retained. Must be called from one goroutine at a time (the
// client's event loop).
func (c *Conn) Write(iov [][]byte) (pending int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	if c.tls != nil {
		return c.writeTLS(iov)
	}
	return c.writeLocked(iov)
}

// writeLocked is Write's work; c.mu is held and c is open.
func (c *Conn) writeLocked(iov [][]byte) (pending int, err error) {
	if c.wbuf != nil && len(c.wbuf.B) > 0 {
		for _, b := range iov {
			c.wbuf.B = append(c.wbuf.B, b...)
		}
		return len(c.wbuf.B), nil
	}
	n, err := writev(c.fd, iov)
	if err != nil {
		return 0, err
	}
	rest := 0
	for _, b := range iov {
		if n >= len(b) {
			n -= len(b)
			continue
		}
		if c.wbuf == nil {
			c.wbuf = bytebufferpool.Get()
		}
		c.wbuf.B = append(c.wbuf.B, b[n:]...)
		rest += len(b) - n
		n = 0
	}
	if rest > 0 {
		c.heldSince = time.Now()
		c.p.command(cmd{c: c, op: opWantWrite})
	}
	return rest, nil
}

// stalled reports whether the host has taken no byte for d while bytes
// were held for it. Poller goroutine.
func (c *Conn) stalled(now time.Time, d time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wbuf != nil && len(c.wbuf.B) > 0 && now.Sub(c.heldSince) > d
}

// Pending returns the bytes held back for the host.
func (c *Conn) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pendingLocked()
}

func (c *Conn) pendingLocked() int {
	if c.wbuf == nil {
		return 0
	}
	return len(c.wbuf.B)
}

// Ack reports that n bytes handed over by HostData were taken by the
// client side, and samples the client's outbound buffer. Any goroutine.
func (c *Conn) Ack(n int, outbound int) {
	c.inflight.Add(-int64(n))
	c.SetOutbound(outbound)
}

// SetOutbound records how many bytes the client's outbound buffer holds.
func (c *Conn) SetOutbound(outbound int) {
	c.outbound.Store(int64(outbound))
	if c.pausedFlag.Load() && c.buffered() <= c.p.cfg.LowWater && c.resumeAsked.CompareAndSwap(false, true) {
		c.p.command(cmd{c: c, op: opResume})
	}
}

// Buffered returns the bytes read from the host that the client has not
// taken: in flight to its loop plus its outbound buffer as last sampled.
func (c *Conn) Buffered() int64 { return c.buffered() }

func (c *Conn) buffered() int64 { return c.inflight.Load() + c.outbound.Load() }

// Paused reports whether reading the host is paused for backpressure.
func (c *Conn) Paused() bool { return c.pausedFlag.Load() }

// Start registers the socket with its poller: reading begins.
func (c *Conn) Start() { c.p.submit(cmd{c: c, op: opAdd}, false) }

// StartOnDriver is Start on the goroutine that drives c's poller (driven
// pollers: the loop Attach named): the socket is registered at once.
func (c *Conn) StartOnDriver() { c.p.submit(cmd{c: c, op: opAdd}, true) }

// CloseWrite is Close for a client that is done: the bytes held back for the
// host are written first (within a bounded time), then the socket closes.
// The sink hears nothing more. Any goroutine; idempotent with Close.
func (c *Conn) CloseWrite() { c.end(opCloseWrite, false) }

// CloseWriteOnDriver is CloseWrite on the goroutine that drives c's poller
// (see StartOnDriver): applied at once outside the poller's Poll.
func (c *Conn) CloseWriteOnDriver() { c.end(opCloseWrite, true) }

// Close asks the poller to close the host socket. The sink hears nothing
// more. Any goroutine; idempotent.
func (c *Conn) Close() { c.end(opClose, false) }

// CloseOnDriver is Close on the goroutine that drives c's poller (see
// StartOnDriver): applied at once outside the poller's Poll.
func (c *Conn) CloseOnDriver() { c.end(opClose, true) }

// end submits op (opClose or opCloseWrite) unless c has ended already:
// only the first of Close and CloseWrite counts.
func (c *Conn) end(op op, onDriver bool) {
	if c.gone.Swap(true) {
		return
	}
	c.p.submit(cmd{c: c, op: op}, onDriver)
}

// closeFD closes the socket; poller goroutine only.
func (c *Conn) closeFD() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	if c.tls != nil {
		c.closeTLS()
	}
	_ = gio.Close(c.fd)
	if c.wbuf != nil {
		bytebufferpool.Put(c.wbuf)
		c.wbuf = nil
	}
}

// flush writes held-back bytes; poller goroutine. It returns whether all
// were written.
func (c *Conn) flush() (done bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.wbuf == nil || len(c.wbuf.B) == 0 {
		return true, nil
	}
	n, err := write(c.fd, c.wbuf.B)
	if err != nil {
		return false, err
	}
	if n > 0 {
		c.heldSince = time.Now()
	}
	c.wbuf.B = c.wbuf.B[:copy(c.wbuf.B, c.wbuf.B[n:])]
	if len(c.wbuf.B) > 0 {
		return false, nil
	}
	bytebufferpool.Put(c.wbuf)
	c.wbuf = nil
	return true, nil
}

// writev writes iov to a non-blocking fd, retrying on EINTR; EAGAIN is not
// an error (n tells how much was taken).
func writev(fd int, iov [][]byte) (int, error) {
	for {
		n, err := gio.Writev(fd, iov)
		switch err {
		case nil:
			return n, nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, nil
		}
		return 0, err
	}
}

func write(fd int, b []byte) (int, error) {
	iov := [1][]byte{b}
	return writev(fd, iov[:])
}
