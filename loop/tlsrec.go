package loop

import (
	"net"
	"net/netip"
	"time"

	"github.com/consoleproxy/consoleproxy/relay/tlsrec"
)

// The TLS record framing the event loop needs to drive crypto/tls without
// blocking (tls.go): crypto/tls is only ever offered whole records, one at
// a time, so a read of it never waits for the network and never leaves a
// half record inside it.

const (
	// recordHeaderLen is a TLS record's header: type, version, length.
	recordHeaderLen = 5
	// maxRecordPayload is the longest record body any TLS version allows
	// (TLS 1.2: 2^14 + 2048). A header claiming more is not waited for:
	// crypto/tls is given it at once and refuses it.
	maxRecordPayload = 1<<14 + 2048
	// maxHelloRecord is the longest first record waited for on the loop
	// before a handshake is started: a ClientHello record's body is at most
	// 2^14 bytes (RFC 8446 §5.1). A connection costs at most this much of
	// gnet's buffer before any goroutine is spent on it.
	maxHelloRecord = 1 << 14
)

// recordLen is the body length in a record header (at least 5 bytes).
func recordLen(h []byte) int { return int(h[3])<<8 | int(h[4]) }

// wholeRecords is how many bytes at the front of buf end on a record
// boundary, after first finishing the record in progress (need bytes of it
// still to come). A header claiming more than maxRecordPayload ends the
// scan with that header included, so crypto/tls sees it and refuses it.
func wholeRecords(buf []byte, need int) int {
	if len(buf) < need {
		return 0
	}
	off := need
	for len(buf)-off >= recordHeaderLen {
		n := recordLen(buf[off:])
		if n > maxRecordPayload {
			return off + recordHeaderLen
		}
		if len(buf)-off < recordHeaderLen+n {
			break
		}
		off += recordHeaderLen + n
	}
	return off
}

// recordCursor hands crypto/tls the bytes of a stream of whole records, but
// never past the end of the record it is reading: its input buffer then
// holds at most one record, and after each record it decrypted the cursor
// is on a boundary again.
type recordCursor struct {
	need int // bytes of the record in progress not yet handed over; 0 on a boundary
}

// take copies from src into p, no further than the end of the record in
// progress; src starts with a header whenever the cursor is on a boundary.
func (r *recordCursor) take(src, p []byte) int {
	if r.need == 0 {
		if len(src) < recordHeaderLen { // cannot happen with whole records
			return copy(p, src)
		}
		r.need = recordHeaderLen + recordLen(src)
	}
	n := copy(p, src[:min(len(src), r.need)])
	r.need -= n
	return n
}

// tlsWire is the net.Conn under a session's tls.Conn: during the handshake
// it blocks the handshake goroutine on what the loop hands over (tlsHS);
// after it, its reads take whole records the loop offers and its writes
// collect records for the loop to flush, so nothing ever blocks.
type tlsWire struct{ t *tlsConn }

func (w tlsWire) Read(p []byte) (int, error) {
	t := w.t
	if t.hs != nil {
		return t.hs.read(t, p)
	}
	if len(t.carry) > 0 {
		n := t.cur.take(t.carry, p)
		if t.carry = t.carry[n:]; len(t.carry) == 0 {
			t.carry = nil // let the handshake's buffer go
		}
		return n, nil
	}
	if len(t.src) > 0 {
		n := t.cur.take(t.src, p)
		t.src = t.src[n:]
		return n, nil
	}
	return 0, tlsrec.ErrWouldBlock
}

func (w tlsWire) Write(p []byte) (int, error) {
	t := w.t
	if t.hs != nil {
		return t.hs.write(t, p)
	}
	if t.out == nil {
		t.out = getOutBuf()
	}
	*t.out = append(*t.out, p...)
	return len(p), nil
}

func (w tlsWire) Close() error        { return nil }            // the loop closes the socket
func (w tlsWire) LocalAddr() net.Addr { return &net.TCPAddr{} } // crypto/tls's server never asks
func (w tlsWire) RemoteAddr() net.Addr {
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(w.t.ss.peer, 0))
}
func (w tlsWire) SetDeadline(time.Time) error      { return nil } // the sweeper bounds the handshake
func (w tlsWire) SetReadDeadline(time.Time) error  { return nil }
func (w tlsWire) SetWriteDeadline(time.Time) error { return nil }
