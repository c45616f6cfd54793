//go:build linux

package relay

import (
	"crypto/tls"
	"io"
	"net"
	"sync"
	"time"

	gio "github.com/panjf2000/gnet/v2/pkg/io"
	"github.com/valyala/bytebufferpool"
	"golang.org/x/sys/unix"

	"github.com/consoleproxy/consoleproxy/relay/tlsrec"
)

// The VeNCrypt TLS leg toward a compute host, without a goroutine or a
// socket pair per session. crypto/tls's handshake is blocking code: it runs
// over a net.Conn on the caller's goroutine (relay/rfb's bounded pool).
// Then the tls.Conn's transport switches to the raw socket a poller owns
// (AttachTLS): the poller decrypts the host's records into its read buffers
// (a read of the socket that finds nothing answers tlsrec.ErrWouldBlock,
// which crypto/tls returns without keeping, so no read ever blocks), and
// Conn.Write seals the client's bytes on the caller's goroutine into a
// pooled buffer written like any other host write: held back when the host
// does not take it, counted by Pending, bound by the write timeout. The
// pushback, the high and low water marks and the metrics are the plain
// relay's, in plaintext bytes toward the client and ciphertext toward the
// host.
//
// Bytes held per direction: toward the client, what a plain session holds
// (Config.HighWater, plus one read) plus what crypto/tls has read from the
// socket and not yet decrypted, at most MaxTLSReadAhead; toward the host,
// the records of the bytes the caller wrote, which it stops adding to while
// Pending is not zero.

// MaxTLSReadAhead bounds the host's bytes crypto/tls holds for a session
// beyond those it handed over: it reads the socket until one record is
// whole, into the free space of a buffer at most twice a record, so it never
// holds more than two records and a read's worth (the poller does not read a
// paused session, so nothing more comes in).
const MaxTLSReadAhead = 2*(recordHeaderLen+maxRecordPayload) + 512

const (
	recordHeaderLen  = 5
	maxRecordPayload = 1<<14 + 2048 // TLS 1.2's longest record body
	// maxGather is the most bytes of several slices Conn.Write copies
	// together to seal as one record (a TLS record's plaintext): a batch of
	// small client messages (keys, pointer moves) costs one record's
	// overhead, not one each.
	maxGather = 1 << 14
	// tlsIdleTrim is how long a host sends nothing before its session lets
	// go of crypto/tls's read buffers (a framebuffer update grows them to a
	// record or two): a stream of records does not reallocate them.
	tlsIdleTrim = time.Second
)

// TLSClient is the client side of TLS toward a compute host: its
// handshake runs blocking over the net.Conn NewTLSClient was given, its
// records on a poller once attached (AttachTLS).
type TLSClient struct {
	tc *tls.Conn
	w  *tlsWire
}

// NewTLSClient is a TLS client over nc (blocking, with nc's deadlines)
// until it is attached to a poller.
func NewTLSClient(nc net.Conn, cfg *tls.Config) *TLSClient {
	w := &tlsWire{hs: nc, fd: -1}
	return &TLSClient{tc: tls.Client(w, cfg), w: w}
}

// Conn is the tls.Conn, for the handshake and for reads and writes over nc
// before AttachTLS; afterwards only the poller and Conn.Write use it.
func (t *TLSClient) Conn() *tls.Conn { return t.tc }

// AttachTLS is Attach for a socket whose TLS handshake t ran: fd is the
// same connection as the net.Conn t was made with (which the caller has
// closed, see Detach), and from now on t's records go through fd on a
// poller. Nothing is read until Start; bytes crypto/tls read ahead during
// the handshake are decrypted then. The caller must not use t again.
func (r *Relay) AttachTLS(fd int, t *TLSClient, sink Sink, poller int) *Conn {
	t.w.hs, t.w.fd = nil, fd
	tlsrec.Trim(t.tc, 0) // the handshake's buffers, if nothing is left in them
	c := r.Attach(fd, sink, poller)
	c.tls = t
	return c
}

// tlsWire is the transport under a TLSClient's tls.Conn: hs while the
// handshake runs, then the non-blocking socket fd.
type tlsWire struct {
	hs net.Conn // until attached
	fd int      // after: owned by the poller, which alone reads it

	mu     sync.Mutex
	sealed *bytebufferpool.ByteBuffer // records crypto/tls wrote, not yet handed to the socket

	// Poller goroutine only.
	more   bool // crypto/tls may hold records already read from the socket
	queued bool // in the poller's ready list
	busy   bool // records were read since the last trim check
}

// Read reads the socket without waiting: ErrWouldBlock when it is empty.
func (w *tlsWire) Read(p []byte) (int, error) {
	if w.hs != nil {
		return w.hs.Read(p)
	}
	for {
		n, err := gio.Read(w.fd, p)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return 0, tlsrec.ErrWouldBlock
		case err != nil:
			return 0, err
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// Write collects the records crypto/tls seals (on the caller of Conn.Write,
// or on the poller when a read makes it answer) for Conn to write in the
// order they were sealed.
func (w *tlsWire) Write(p []byte) (int, error) {
	if w.hs != nil {
		return w.hs.Write(p)
	}
	w.mu.Lock()
	if w.sealed == nil {
		w.sealed = bytebufferpool.Get()
	}
	w.sealed.B = append(w.sealed.B, p...)
	w.mu.Unlock()
	return len(p), nil
}

// take returns the records sealed so far, to be written and then put back
// in bytebufferpool; nil if none.
func (w *tlsWire) take() *bytebufferpool.ByteBuffer {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.sealed
	w.sealed = nil
	return s
}

func (w *tlsWire) Close() error {
	if w.hs != nil {
		return w.hs.Close()
	}
	return nil // the poller closes the socket
}

func (w *tlsWire) LocalAddr() net.Addr {
	if w.hs != nil {
		return w.hs.LocalAddr()
	}
	return &net.TCPAddr{}
}

func (w *tlsWire) RemoteAddr() net.Addr {
	if w.hs != nil {
		return w.hs.RemoteAddr()
	}
	return &net.TCPAddr{}
}

// The deadlines are the handshake's; attached, the poller's timers and
// the write timeout bound the socket instead.
func (w *tlsWire) SetDeadline(t time.Time) error {
	if w.hs != nil {
		return w.hs.SetDeadline(t)
	}
	return nil
}

func (w *tlsWire) SetReadDeadline(t time.Time) error {
	if w.hs != nil {
		return w.hs.SetReadDeadline(t)
	}
	return nil
}

func (w *tlsWire) SetWriteDeadline(t time.Time) error {
	if w.hs != nil {
		return w.hs.SetWriteDeadline(t)
	}
	return nil
}

// gatherPool holds the buffers Conn.Write copies small slices into.
var gatherPool bytebufferpool.Pool

// writeTLS seals iov and writes the records; c.mu is held.
func (c *Conn) writeTLS(iov [][]byte) (int, error) {
	if err := c.tls.seal(iov); err != nil {
		return 0, err
	}
	return c.sendSealedLocked()
}

// seal encrypts iov into records, gathering several slices that fit one
// record into one.
func (t *TLSClient) seal(iov [][]byte) error {
	total := 0
	for _, b := range iov {
		total += len(b)
	}
	if len(iov) > 1 && total <= maxGather {
		g := gatherPool.Get()
		for _, b := range iov {
			g.B = append(g.B, b...)
		}
		_, err := t.tc.Write(g.B)
		gatherPool.Put(g)
		return err
	}
	for _, b := range iov {
		if len(b) == 0 {
			continue
		}
		if _, err := t.tc.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// sendSealedLocked writes the records sealed so far, behind any bytes
// already held back, and returns the bytes pending; c.mu is held, so
// records go out in the order they were sealed.
func (c *Conn) sendSealedLocked() (int, error) {
	s := c.tls.w.take()
	if s == nil {
		return c.pendingLocked(), nil
	}
	iov := [1][]byte{s.B}
	pending, err := c.writeLocked(iov[:])
	bytebufferpool.Put(s)
	return pending, err
}

// sendSealed writes what crypto/tls sealed while the poller read (an
// alert, a key update's answer). Poller goroutine.
func (c *Conn) sendSealed() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		if s := c.tls.w.take(); s != nil {
			bytebufferpool.Put(s)
		}
		return nil
	}
	_, err := c.sendSealedLocked()
	return err
}

// closeNotify seals a close_notify behind the bytes held back for the
// host: the client is done. Poller goroutine.
func (c *Conn) closeNotify() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	_ = c.tls.tc.CloseWrite() // fails only if one was sealed already
	_, err := c.sendSealedLocked()
	return err
}

// closeTLS sends a close_notify if nothing is held back (one try, the
// socket closes next) and lets the sealed buffer go; c.mu is held.
func (c *Conn) closeTLS() {
	if c.wbuf == nil || len(c.wbuf.B) == 0 {
		_ = c.tls.tc.CloseWrite()
	}
	if s := c.tls.w.take(); s != nil {
		if c.wbuf == nil || len(c.wbuf.B) == 0 {
			_, _ = write(c.fd, s.B)
		}
		bytebufferpool.Put(s)
	}
}

// readTLS decrypts the host's records into one read buffer, as far as
// crypto/tls has whole records (read from the socket now or earlier), and
// hands the plaintext to the sink as read does. A full buffer may leave
// records in crypto/tls: the session is queued to be read again without
// waiting for epoll.
func (p *Poller) readTLS(c *Conn) {
	w := c.tls.w
	b := getBuffer(p.cfg.ReadSize)
	room := b.B[Headroom:]
	n := 0
	var err error
	for n < len(room) && err == nil {
		var m int
		m, err = c.tls.tc.Read(room[n:])
		n += m
	}
	w.more, w.busy = err == nil, true
	p.trims[c] = struct{}{}
	if serr := c.sendSealed(); serr != nil && err == nil {
		err = serr
	}
	if n == 0 {
		PutBuffer(b)
	} else {
		c.inflight.Add(int64(n))
		if c.gone.Load() {
			PutBuffer(b)
			return
		}
		c.sink.HostData(b, n)
		if c.buffered() > p.cfg.HighWater {
			p.pause(c)
		}
	}
	switch {
	case err == nil:
		p.queueRead(c)
	case err == tlsrec.ErrWouldBlock:
	case err == io.EOF: // close_notify, or a FIN on a record boundary
		p.finish(c, nil)
	default:
		p.finish(c, err)
	}
}

// queueRead queues a TLS session whose crypto/tls may hold records to be
// read again after this round of events (epoll says nothing of them).
func (p *Poller) queueRead(c *Conn) {
	if c.tls == nil || !c.tls.w.more || c.tls.w.queued {
		return
	}
	c.tls.w.queued = true
	p.ready = append(p.ready, c)
}

// readQueued reads the queued TLS sessions once each, unless paused or
// finished meanwhile.
func (p *Poller) readQueued() {
	batch := p.ready
	p.ready = p.readySpare[:0]
	for i, c := range batch {
		batch[i] = nil
		c.tls.w.queued = false
		if p.conns.get(c.fd) == c && !c.paused && !c.gone.Load() {
			p.readTLS(c)
		}
	}
	p.readySpare = batch[:0]
}

// trimIdle lets go of crypto/tls's read buffers of the TLS sessions that
// read nothing since the last check (tlsIdleTrim ago at least). One that
// holds a partial record keeps its buffers until it reads again.
func (p *Poller) trimIdle() {
	for c := range p.trims {
		if c.tls.w.busy {
			c.tls.w.busy = false
			continue
		}
		tlsrec.Trim(c.tls.tc, 0)
		delete(p.trims, c)
	}
}
