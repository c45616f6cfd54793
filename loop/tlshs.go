//go:build linux

package loop

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"

	"github.com/panjf2000/gnet/v2"

	"github.com/consoleproxy/consoleproxy/relay/tlsrec"
)

// TLS handshakes. Nothing but gnet's buffer is spent on a connection until
// its first record, a ClientHello of at most maxHelloRecord bytes, is whole:
// a client that connects and says nothing, or trickles its hello, costs its
// session and socket and no goroutine, and the sweeper closes it at
// --handshake-timeout like any other. Then crypto/tls's handshake, which is
// blocking code, runs on one of at most TLSHandshakers goroutines over an
// in-memory transport: the loop copies the client's whole records into it
// and the goroutine's writes are queued to the loop. Connections in the
// handshake hold their --max-pending slot until their upgrade request is
// read, so the handshakes waiting for a goroutine are bounded by it too (and
// by TLSHandshakeQueue when it is off).

const (
	// TLSHandshakers is the most TLS handshakes run at once, each on a
	// goroutine that exists only while it runs. A handshake's goroutine
	// mostly waits for the client's second flight (one round trip) and
	// computes for a millisecond or less (an ECDSA or RSA signature), so
	// this bounds handshakes per second to about TLSHandshakers per round
	// trip (640 per second at 100 ms) while capping the goroutines a flood
	// of ClientHellos can make; the rest wait in a queue.
	TLSHandshakers = 64
	// TLSHandshakeQueue is the most handshakes waiting for a goroutine when
	// --max-pending does not bound them first; past it a connection is
	// closed and counted as overloaded.
	TLSHandshakeQueue = 1024
	// hsInMax bounds the client's bytes handed to a handshake goroutine and
	// not yet read by it; past it the loop stops reading the client.
	hsInMax = 64 << 10
)

// handshakers runs TLS handshakes on at most max goroutines, started on
// demand and gone when the queue is empty, so an idle proxy has none.
type handshakers struct {
	mu      sync.Mutex
	running int
	max     int
	queue   []*tlsConn
	qmax    int
	wg      *sync.WaitGroup
	offLoop *atomic.Int64 // handshakes queued or running (holdP)
}

func newHandshakers(max, qmax int, wg *sync.WaitGroup, offLoop *atomic.Int64) *handshakers {
	return &handshakers{max: max, qmax: qmax, wg: wg, offLoop: offLoop}
}

// submit runs t's handshake now or queues it; false means the queue is full.
// Any goroutine.
func (h *handshakers) submit(t *tlsConn) bool {
	h.mu.Lock()
	if h.running < h.max {
		h.running++
		h.mu.Unlock()
		h.offLoop.Add(1)
		h.wg.Add(1)
		go h.run(t)
		return true
	}
	defer h.mu.Unlock()
	if len(h.queue) >= h.qmax {
		return false
	}
	h.offLoop.Add(1)
	h.queue = append(h.queue, t)
	return true
}

func (h *handshakers) run(t *tlsConn) {
	defer h.wg.Done()
	for t != nil {
		t.handshake()
		h.offLoop.Add(-1)
		h.mu.Lock()
		if len(h.queue) > 0 {
			t = h.queue[0]
			n := copy(h.queue, h.queue[1:])
			h.queue[n] = nil
			h.queue = h.queue[:n]
		} else {
			h.running--
			t = nil
		}
		h.mu.Unlock()
	}
}

// tlsHS is what the loop and a handshake goroutine share during one
// handshake, under mu: the client's records handed over (in), the records
// crypto/tls wrote and the loop has not flushed yet (out).
type tlsHS struct {
	mu       sync.Mutex
	cond     sync.Cond
	in       []byte
	out      []byte
	flushing bool // a flush task is queued on the loop
	closed   bool // the connection is gone: reads and writes fail
	wake     bool // the loop left whole records in gnet's buffer for want of room
}

func newTLSHS() *tlsHS {
	h := &tlsHS{}
	h.cond.L = &h.mu
	return h
}

// read blocks the handshake goroutine until the loop has handed over
// client bytes, then takes at most the rest of one record.
func (h *tlsHS) read(t *tlsConn, p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for len(h.in) == 0 {
		if h.closed {
			return 0, net.ErrClosed
		}
		h.cond.Wait()
	}
	n := t.cur.take(h.in, p)
	h.in = h.in[n:]
	if h.wake {
		h.wake = false
		_ = t.Conn.Wake(nil) // room again: the loop hands over what it left
	}
	return n, nil
}

// write queues crypto/tls's records for the loop to write (gnet's
// AsyncWrite and Execute go to different queues, so the flight and the
// handshake's end both go through Execute, in order).
func (h *tlsHS) write(t *tlsConn, p []byte) (int, error) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return 0, net.ErrClosed
	}
	h.out = append(h.out, p...)
	schedule := !h.flushing
	h.flushing = true
	h.mu.Unlock()
	if schedule {
		if err := t.Conn.EventLoop().Execute(context.Background(), gnet.RunnableFunc(t.hsFlush)); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (h *tlsHS) close() {
	h.mu.Lock()
	h.closed = true
	h.in = nil
	h.mu.Unlock()
	h.cond.Broadcast()
}

// hello waits on the loop for the whole first record, a ClientHello, then
// starts the handshake. Loop.
func (t *tlsConn) hello() gnet.Action {
	buf, _ := t.Conn.Peek(-1)
	if len(buf) < recordHeaderLen {
		return gnet.None
	}
	n := recordLen(buf)
	if buf[1] != 3 || n > maxHelloRecord {
		return t.ss.refuseTLS(ResultTLSFailed, "not a TLS ClientHello")
	}
	if len(buf) < recordHeaderLen+n {
		return gnet.None
	}
	s := t.ss.srv
	t.hs = newTLSHS()
	t.tc = tls.Server(tlsWire{t}, s.cfg.TLS.Config)
	t.stage = tlsHandshaking
	act := t.feed()
	if !s.handshakes.submit(t) {
		t.hs.close()
		return t.ss.refuseTLS(ResultOverloaded, "too many TLS handshakes waiting")
	}
	return act
}

// feed hands the client's whole records to the handshake goroutine, up to
// hsInMax not yet read; past it reading the client pauses until the
// goroutine has taken some (it wakes the loop). Loop.
func (t *tlsConn) feed() gnet.Action {
	raw, h := t.Conn, t.hs
	buf, _ := raw.Peek(-1)
	h.mu.Lock()
	n := wholeRecords(buf[:min(len(buf), hsInMax-len(h.in))], 0)
	if n > 0 {
		h.in = append(h.in, buf[:n]...)
		h.cond.Signal()
	}
	h.wake = wholeRecords(buf, 0) > n
	wait := h.wake
	h.mu.Unlock()
	if n > 0 {
		_, _ = raw.Discard(n)
	}
	var err error
	switch {
	case wait:
		err = raw.PauseRead()
	case raw.ReadPaused():
		err = raw.ResumeRead()
	}
	if err != nil {
		return gnet.Close
	}
	return gnet.None
}

// handshake runs crypto/tls's handshake on a handshake goroutine and hands
// its end to the loop.
func (t *tlsConn) handshake() {
	err := t.tc.Handshake()
	_ = t.Conn.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		t.handshook(err)
		return nil
	}))
}

// hsFlush writes what the handshake goroutine queued. Loop.
func (t *tlsConn) hsFlush(context.Context) error {
	h := t.hs
	if h == nil {
		return nil
	}
	h.mu.Lock()
	out := h.out
	h.out, h.flushing = nil, false
	h.mu.Unlock()
	if t.stage == tlsHandshaking && len(out) > 0 {
		_, _ = t.Conn.Write(out) // a failure closed the connection inside
	}
	return nil
}

// handshook takes the handshake's end on the loop: the session goes on
// with plaintext, or is refused. A connection that closed meanwhile is
// counted here, after the handshake's outcome is known (OnClose left it).
func (t *tlsConn) handshook(err error) {
	ss := t.ss
	if t.stage != tlsHandshaking {
		if !ss.counted {
			ss.count(tlsEnd(err))
		}
		return
	}
	if err != nil {
		_ = ss.refuseTLS(tlsEnd(err), "tls handshake failed")
		_ = t.Conn.Close()
		return
	}
	h := t.hs
	h.mu.Lock()
	if len(h.in) > 0 {
		t.carry = h.in
	}
	h.in = nil
	h.mu.Unlock()
	t.hs = nil
	t.stage = tlsOpen
	tlsrec.Trim(t.tc, 0) // the handshake's buffers
	if t.Conn.ReadPaused() {
		if t.Conn.ResumeRead() != nil {
			_ = t.Conn.Close()
			return
		}
	}
	_ = t.Conn.Wake(nil) // records that came with or after the client's Finished
}

// tlsEnd is the result of a handshake that failed: the client closed (or
// was closed) before it ended, or it failed.
func tlsEnd(err error) Result {
	if err == nil || errors.Is(err, net.ErrClosed) {
		return ResultClientGone
	}
	return ResultTLSFailed
}

// refuseTLS counts and logs a wss:// connection refused before its
// handshake ended (nothing can be answered) and closes it. Loop.
func (ss *session) refuseTLS(r Result, why string) gnet.Action {
	ss.count(r)
	ss.srv.cfg.Logger.Info("session refused", "peer", ss.peer.String(), "result", string(r), "reason", why)
	return gnet.Close
}
