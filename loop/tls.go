//go:build linux

package loop

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/consoleproxy/consoleproxy/relay/tlsrec"
)

// wss:// runs on the event loop. A connection whose first byte is a TLS
// handshake record (0x16) stays in gnet: its ClientHello record is waited
// for in gnet's buffer (no goroutine yet), then crypto/tls's handshake runs
// on a bounded set of handshake goroutines (tlshs.go) fed by the loop, and
// after it the session's records are decrypted and encrypted on its loop:
// a tls.Conn over an in-memory transport that is offered whole records only
// (tlsrec.go), so it never blocks. The session keeps one state machine:
// tlsConn is the gnet.Conn it reads and writes, with plaintext in place of
// the socket's bytes. DECISIONS.md ("TLS on the event loop") has the
// reasoning and the figures.

// tlsRecordHandshake is the first byte of a TLS ClientHello record.
const tlsRecordHandshake = 0x16

// TLSConfig is the wss:// side of a Server.
type TLSConfig struct {
	// Config is the server's TLS configuration (certificates through
	// GetCertificate so they can be swapped while sessions stay up).
	Config *tls.Config
	// Only refuses plain connections: HTTP 400 if the bytes look like HTTP,
	// else the connection is closed (--ssl-only).
	Only bool
}

type tlsStage uint8

const (
	tlsHello       tlsStage = iota // waiting on the loop for a whole ClientHello record
	tlsHandshaking                 // crypto/tls's handshake on a handshake goroutine
	tlsOpen                        // records decrypted and encrypted on the loop
	tlsClosed                      // the socket is closed (OnClose ran)
)

// tlsConn is a wss:// client as its session sees it: a gnet.Conn whose
// Peek, Discard, InboundBuffered, Write, Writev and AsyncWrite carry
// plaintext, while the embedded gnet.Conn (the socket) carries records.
// OutboundBuffered, Flushed, pausing, waking and closing are the socket's:
// what gnet holds for the client is ciphertext, and that is what the
// backpressure and --write-timeout accounting count.
//
// Ownership: everything is the loop's except aq (any goroutine, under its
// mutex) and hs, which the handshake goroutine shares under hs.mu until the
// handshake's end is delivered to the loop.
type tlsConn struct {
	gnet.Conn // the client's socket
	ss        *session
	tc        *tls.Conn
	stage     tlsStage
	hs        *tlsHS // during the handshake only

	// Records offered to crypto/tls (tlsWire.Read): carry, handed to the
	// handshake goroutine but not read by crypto/tls before the handshake
	// ended, then src, whole records in gnet's buffer during fill.
	cur   recordCursor
	carry []byte
	src   []byte
	held  bool  // crypto/tls may hold decrypted bytes fill has not taken
	stuck int   // gnet's buffered bytes when they held no whole record: not looked at again until more come
	rerr  error // crypto/tls's read failed (close_notify, a bad record): close once the plaintext is used

	// Decrypted bytes not yet discarded by the session: plain[pOff:pEnd].
	// Borrowed from plainPool while not empty, so idle sessions hold none.
	plain      *[]byte
	pOff, pEnd int

	out *[]byte // records crypto/tls wrote, flushed to the socket by the loop (from outPool)

	aq     asyncQueue // plaintext handed to AsyncWrite, encrypted on the loop by drain
	aqBusy []asyncEntry
	// trimmed is set when the sweeper queued trimIdle for a client silent
	// for tlsIdleTrim, cleared when records are read again.
	trimmed atomic.Bool
}

// tlsIdleTrim is how long a wss:// client sends nothing before its session
// lets go of crypto/tls's read buffers (tlsrec.Trim): one grown by a large
// record (a paste) is kept while records keep coming, so a stream of them
// does not allocate it again for each batch.
const tlsIdleTrim = time.Second

// idle lets go of what a session whose client went quiet still holds for
// reading. Sweeper goroutine, relaying sessions only.
func (t *tlsConn) idle() {
	if t.trimmed.Swap(true) {
		return
	}
	_ = t.Conn.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		if t.stage == tlsOpen {
			tlsrec.Trim(t.tc, 0)
		}
		return nil
	}))
}

// MaxHeldUpTLS bounds the client bytes one wss:// session holds toward its
// compute host: MaxHeldUp (a batch in relay, a read in gnet's buffer), plus
// the start of one record left in gnet's buffer and the rest of one
// decrypted record crypto/tls keeps for the next batch.
const MaxHeldUpTLS = MaxHeldUp + 2*(recordHeaderLen+maxRecordPayload)

// plainPool holds the decrypted-bytes buffers: one parse batch each.
var plainPool = sync.Pool{New: func() any { b := make([]byte, maxPeek); return &b }}

// Records are collected in a buffer from outPool and written to the socket
// in one go: at the end of a Write, or in a drain each time outFlushAt bytes
// are collected (a drain may take many host frames).
const (
	outFlushAt = 64 << 10
	outBufSize = outFlushAt + 64<<10 // room for a base64 frame's records beyond outFlushAt
)

var outPool = sync.Pool{New: func() any { b := make([]byte, 0, outBufSize); return &b }}

func getOutBuf() *[]byte { return outPool.Get().(*[]byte) }

// putOutBuf pools b unless it grew for something large (a static file).
func putOutBuf(b *[]byte) {
	if cap(*b) <= 2*outBufSize {
		*b = (*b)[:0]
		outPool.Put(b)
	}
}

// startTLS turns the session into a wss:// one: its connection becomes a
// tlsConn waiting for the ClientHello record. Loop, in the handshake phase
// (no other goroutine reads ss.c before the session leaves it).
func (ss *session) startTLS() gnet.Action {
	t := &tlsConn{Conn: ss.raw, ss: ss}
	ss.tls, ss.c, ss.secure = t, t, true
	return t.hello()
}

// onTraffic is the session's OnTraffic for a wss:// client: the handshake
// stages, then the plain session logic on the plaintext.
func (t *tlsConn) onTraffic() gnet.Action {
	switch t.stage {
	case tlsHello:
		return t.hello()
	case tlsHandshaking:
		return t.feed()
	case tlsOpen:
	default:
		return gnet.Close
	}
	if act := t.ss.dispatch(); act != gnet.None || t.stage != tlsOpen {
		return gnet.Close // closing, or closed inside a write: nothing more
	}
	// What crypto/tls wrote while reading (an alert, a KeyUpdate answer).
	if t.out != nil && t.flush() != nil {
		return gnet.Close
	}
	if t.rerr != nil {
		// close_notify or a bad record: what was decrypted before it still
		// reaches the host (OnClose's forwardRest), as after a plain FIN.
		return gnet.Close
	}
	return gnet.None
}

// limit is how much plaintext fill decrypts ahead: one parse batch, or the
// longest upgrade request allowed while it is being read.
func (t *tlsConn) limit() int {
	if phase(t.ss.phase.Load()) == phaseHandshake {
		return t.ss.srv.plainHead
	}
	return maxPeek
}

// fill decrypts whole records from gnet's buffer until limit bytes of
// plaintext are buffered, the whole records run out, or crypto/tls fails.
// Never blocks: crypto/tls is offered only whole records, and the transport
// answers a temporary error when they are used up. Loop.
func (t *tlsConn) fill(limit int) {
	if t.stage != tlsOpen || t.rerr != nil || t.pEnd-t.pOff >= limit {
		return
	}
	raw := t.Conn
	n := raw.InboundBuffered()
	fresh := n > 0 && n != t.stuck // gnet's buffer changed since it last held no whole record
	offered, took := 0, false      // bytes of gnet's buffer offered in t.src; whether any were
	for t.pEnd-t.pOff < limit {
		if len(t.carry) == 0 && len(t.src) == 0 {
			if fresh {
				if offered > 0 {
					_, _ = raw.Discard(offered) // crypto/tls copied them (tlsWire.Read)
				}
				offered = t.offer(raw)
				fresh, took = offered > 0, took || offered > 0
			}
			if len(t.src) == 0 && !t.held {
				break // nothing to decrypt
			}
		}
		k, err := t.tc.Read(t.room(limit))
		t.pEnd += k
		t.held = false // what crypto/tls held it gave, or it still holds more than the room: the limit ends the loop
		if err == tlsrec.ErrWouldBlock && fresh {
			continue // a record without application data (a KeyUpdate): offer the next one
		}
		if err != nil {
			if err != tlsrec.ErrWouldBlock {
				t.rerr = err
			}
			break
		}
	}
	t.held = t.rerr == nil && t.pEnd-t.pOff >= limit
	if used := offered - len(t.src); used > 0 {
		_, _ = raw.Discard(used)
	}
	t.src, t.stuck = nil, 0
	if !fresh && t.rerr == nil {
		t.stuck = raw.InboundBuffered() // only the start of a record is left, or nothing
	}
	if took && t.trimmed.Load() {
		t.trimmed.Store(false)
	}
	if t.pEnd == t.pOff {
		t.releasePlain()
	}
}

// offer sets t.src to the next bytes crypto/tls may read from gnet's
// buffer, the rest of the record in progress or else the next whole
// record, and returns how many (0: no whole record is buffered). One record
// per Peek: when the previous read left a partial record in gnet's buffer
// (nearly always: records do not end where reads do), a Peek of everything
// buffered copied every byte of the new read into one contiguous slice
// (gnet.(*conn).Peek: 0.13 s of the loop's 1.7 s in a profile of a 2 GB
// wss:// upload), while a record's own Peek copies at most the one record
// that spans gnet's two buffers. A header claiming more than
// maxRecordPayload is offered alone: crypto/tls refuses it.
func (t *tlsConn) offer(raw gnet.Conn) int {
	want := t.cur.need
	if want == 0 {
		h, err := raw.Peek(recordHeaderLen)
		if err != nil {
			return 0
		}
		want = recordHeaderLen
		if n := recordLen(h); n <= maxRecordPayload {
			want += n
		}
	}
	buf, err := raw.Peek(want)
	if err != nil {
		return 0
	}
	t.src = buf
	return want
}

// room is the free space for decrypting up to limit buffered bytes: the
// buffer is borrowed if needed and what is left of it moved to its front.
func (t *tlsConn) room(limit int) []byte {
	if t.plain == nil {
		if limit <= maxPeek {
			t.plain = plainPool.Get().(*[]byte)
		} else {
			b := make([]byte, limit)
			t.plain = &b
		}
	}
	b := *t.plain
	if len(b) < limit { // a longer upgrade request than a batch (Request.MaxHeaderBytes)
		nb := make([]byte, limit)
		copy(nb, b[t.pOff:t.pEnd])
		t.pEnd -= t.pOff
		t.pOff = 0
		t.releasePlain()
		t.plain = &nb
		b = nb
	}
	if t.pOff > 0 {
		t.pEnd = copy(b, b[t.pOff:t.pEnd])
		t.pOff = 0
	}
	return b[t.pEnd:limit]
}

func (t *tlsConn) releasePlain() {
	if t.plain != nil && len(*t.plain) == maxPeek {
		plainPool.Put(t.plain)
	}
	t.plain, t.pOff, t.pEnd = nil, 0, 0
}

// held is the client bytes the session holds, plaintext and records not
// yet decrypted (for MaxHeldUp's accounting), without decrypting more.
func (t *tlsConn) heldIn() int { return t.pEnd - t.pOff + t.Conn.InboundBuffered() }

// InboundBuffered is the plaintext available to Peek, after decrypting
// what whole records allow.
func (t *tlsConn) InboundBuffered() int {
	t.fill(t.limit())
	return t.pEnd - t.pOff
}

// Peek returns n bytes of plaintext (all of it for n <= 0) without
// consuming them; valid until the next Discard or fill.
func (t *tlsConn) Peek(n int) ([]byte, error) {
	t.fill(max(t.limit(), n))
	avail := t.pEnd - t.pOff
	if avail == 0 {
		if n > 0 {
			return nil, io.ErrShortBuffer
		}
		return nil, nil
	}
	b := (*t.plain)[t.pOff:t.pEnd]
	if n <= 0 {
		return b, nil
	}
	if n > avail {
		return b, io.ErrShortBuffer
	}
	return b[:n], nil
}

// Discard drops n bytes of plaintext (all of it for n <= 0).
func (t *tlsConn) Discard(n int) (int, error) {
	avail := t.pEnd - t.pOff
	if n <= 0 || n >= avail {
		t.releasePlain()
		return avail, nil
	}
	t.pOff += n
	return n, nil
}

// Read and Next are not used by the session; they would bypass the
// plaintext buffer's accounting.
func (t *tlsConn) Read([]byte) (int, error) { return 0, errTLSUnsupported }
func (t *tlsConn) Next(int) ([]byte, error) { return nil, errTLSUnsupported }
func (t *tlsConn) AsyncWritev([][]byte, gnet.AsyncCallback) error {
	return errTLSUnsupported
}

var errTLSUnsupported = errors.New("loop: not supported on a TLS connection")

// Write encrypts p and writes the records. As with gnet's own Write, a
// failure has closed the connection inside the call (OnClose ran). Loop.
func (t *tlsConn) Write(p []byte) (int, error) {
	if t.stage != tlsOpen {
		return 0, net.ErrClosed
	}
	if _, err := t.tc.Write(p); err != nil {
		t.abort()
		return 0, err
	}
	if err := t.flush(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Writev encrypts and writes bs in one flush. Loop.
func (t *tlsConn) Writev(bs [][]byte) (int, error) {
	if t.stage != tlsOpen {
		return 0, net.ErrClosed
	}
	n := 0
	for _, b := range bs {
		if _, err := t.tc.Write(b); err != nil {
			t.abort()
			return 0, err
		}
		n += len(b)
	}
	if err := t.flush(); err != nil {
		return 0, err
	}
	return n, nil
}

// flush writes the records collected in out to the socket; gnet keeps
// what the socket does not take. A failed write closed the connection
// inside the call. Loop.
func (t *tlsConn) flush() error {
	out := t.out
	if out == nil {
		return nil
	}
	t.out = nil
	_, err := t.Conn.Write(*out)
	putOutBuf(out)
	return err
}

// abort closes the connection at once, inside the call as a failed socket
// write would: crypto/tls refused to write (it sent a fatal alert while
// reading, which is flushed first). Loop.
func (t *tlsConn) abort() {
	if t.flush() != nil {
		return // closed inside the write
	}
	_ = t.Conn.EventLoop().Close(t.Conn)
}

// AsyncWrite queues p to be encrypted and written on the loop; callback
// runs there afterwards, as with gnet's AsyncWrite. The records must be
// sealed in the order they go out, so only the loop encrypts: one drain
// task takes everything queued since the last one. Any goroutine.
func (t *tlsConn) AsyncWrite(p []byte, callback gnet.AsyncCallback) error {
	if !t.aq.push(p, callback) {
		return nil // a drain is already queued
	}
	if err := t.Conn.EventLoop().Execute(context.Background(), t); err != nil {
		t.aq.unschedule()
		return err
	}
	return nil
}

// Run is the drain task AsyncWrite queues on the loop (gnet.Runnable):
// it encrypts what was queued, writes it in one flush and runs the
// callbacks in order. Loop.
func (t *tlsConn) Run(context.Context) error {
	batch := t.aq.take(t.aqBusy)
	var err error
	if t.stage != tlsOpen {
		err = net.ErrClosed
	} else {
		for i := range batch {
			if _, err = t.tc.Write(batch[i].p); err != nil {
				t.abort()
				break
			}
			if t.out != nil && len(*t.out) >= outFlushAt {
				if err = t.flush(); err != nil {
					break // closed inside the write
				}
			}
		}
		if err == nil {
			err = t.flush()
		}
	}
	for i := range batch {
		if cb := batch[i].cb; cb != nil {
			_ = cb(t.Conn, err)
		}
		batch[i] = asyncEntry{}
	}
	t.aqBusy = batch[:0]
	return nil
}

// closed runs in OnClose, after the session's own OnClose work: buffers go
// back, a handshake goroutine waiting for bytes is released.
func (t *tlsConn) closed() {
	t.stage = tlsClosed
	if t.hs != nil {
		t.hs.close()
	}
	t.releasePlain()
	if t.out != nil {
		putOutBuf(t.out)
		t.out = nil
	}
	t.carry, t.src = nil, nil
}

// asyncEntry is one AsyncWrite waiting for the loop.
type asyncEntry struct {
	p  []byte
	cb gnet.AsyncCallback
}

// asyncQueue holds AsyncWrites until the loop's drain takes them all.
type asyncQueue struct {
	mu        sync.Mutex
	q         []asyncEntry
	scheduled bool
}

// push queues an entry; true means the caller must schedule a drain.
func (a *asyncQueue) push(p []byte, cb gnet.AsyncCallback) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.q = append(a.q, asyncEntry{p, cb})
	if a.scheduled {
		return false
	}
	a.scheduled = true
	return true
}

// unschedule takes back the newest entry after its drain could not be
// scheduled (the engine is stopping).
func (a *asyncQueue) unschedule() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if n := len(a.q); n > 0 {
		a.q[n-1] = asyncEntry{}
		a.q = a.q[:n-1]
	}
	a.scheduled = false
}

// take returns everything queued and leaves spare (empty) as the queue.
func (a *asyncQueue) take(spare []asyncEntry) []asyncEntry {
	a.mu.Lock()
	defer a.mu.Unlock()
	q := a.q
	a.q, a.scheduled = spare, false
	return q
}

// ktlsLog logs what the kernel offers for TLS once per process.
var ktlsLog sync.Once

func logKernelTLS(l *slog.Logger) {
	if ok, why := KernelTLS(); ok {
		l.Info("kernel TLS (the tls ULP) is available; wss:// records are still sealed in user space on the event loops")
	} else {
		l.Info("kernel TLS not available; wss:// records are sealed in user space on the event loops", "reason", why)
	}
}

// KernelTLS reports whether the kernel offers the tls ULP (kTLS), and why
// not when it does not. The record layer does not use it yet: it is
// detected and logged so operators can see what a node offers.
func KernelTLS() (bool, string) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_available_ulp")
	if err != nil {
		return false, fmt.Sprintf("cannot read tcp_available_ulp: %v", err)
	}
	for _, f := range strings.Fields(string(b)) {
		if f == "tls" {
			return true, ""
		}
	}
	return false, fmt.Sprintf("the tls ULP is not loaded (tcp_available_ulp: %q)", strings.TrimSpace(string(b)))
}

// CertHolder serves the current certificate and swaps it on Reload, so
// SIGHUP renews certificates without dropping sessions.
type CertHolder struct {
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]
}

// LoadCert reads a certificate and its key; errors say which and why.
func LoadCert(certFile, keyFile string) (*CertHolder, error) {
	h := &CertHolder{certFile: certFile, keyFile: keyFile}
	return h, h.Reload()
}

// Reload re-reads the files; on failure the previous certificate stays.
func (h *CertHolder) Reload() error {
	for _, f := range []string{h.certFile, h.keyFile} {
		if _, err := os.ReadFile(f); err != nil {
			return fmt.Errorf("tls: cannot read %s: %w", f, err)
		}
	}
	c, err := tls.LoadX509KeyPair(h.certFile, h.keyFile)
	if err != nil {
		return fmt.Errorf("tls: certificate %s and key %s: %w", h.certFile, h.keyFile, err)
	}
	h.cert.Store(&c)
	return nil
}

// GetCertificate is for tls.Config.
func (h *CertHolder) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return h.cert.Load(), nil
}
