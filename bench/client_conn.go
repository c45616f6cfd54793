package bench

import (
	"encoding/binary"
	"time"

	"github.com/consoleproxy/consoleproxy/wsframe"
)

// Session is one console session the client opens: which token and which
// kind of console behind it.
type Session struct {
	Token int  // index of the token (the target minted one per index)
	Mode  Mode // the console behind the token
	Paced bool // sends echo messages at the paced rate while pacing is on
	Churn bool // closes after its echoes and is replaced by a fresh session
	// Probe sends one echo message as soon as the session is open, and its
	// time to establish is taken when the answer is back: the first byte
	// through the proxy and the console, not the upgrade alone. A TCP
	// target is "open" once the kernel has completed the connect, before
	// the proxy has even accepted it; only a round trip through the console
	// compares a WebSocket upgrade with it (DECISIONS.md, "consolebench:
	// how the harness measures").
	Probe bool
}

type connState uint8

const (
	stConnecting connState = iota
	stHandshaking
	stOpen
	stDone // ended (closed by the harness or failed); its fd is closed
)

// conn is one client session. Every field is owned by its loop's goroutine.
type conn struct {
	fd    int
	s     Session
	state connState
	start time.Duration // connect began (since the client's epoch)

	head []byte // upgrade response bytes until the blank line (handshaking only)

	// Frame parsing, server to client (RFC 6455 §5.2).
	hdr     [14]byte
	hdrN    int
	payLeft int64
	ctl     bool   // the current frame is a control frame
	ctlOp   byte   // its opcode
	ctlBuf  []byte // its payload (≤ 125 bytes, allocated on the first control frame)
	pongDue bool   // a pong waits for a frame boundary of the stream

	// Echo reassembly: replies are a byte stream of msgSize messages.
	msgOff  int
	stamp   [8]byte
	replies int64 // complete echo messages received
	asked   int64 // echo messages sent

	// Output.
	wbuf   []byte // whole frames not yet written; owned by this conn
	tplOff int64  // bytes of the stream template written (cycle position = tplOff % len)
	sent   int64  // payload bytes sent
	// streamBase is sent when streaming began; throttled: waiting for the
	// stream rate's budget (listed in loop.throttled).
	streamBase int64
	throttled  bool
	recv       int64 // payload bytes received

	verifyAt int64 // replies needed to count as verified (0: not verifying)
}

// frameLen decodes the payload length of the complete header in h.
func frameLen(h []byte) int64 {
	switch h[1] & 0x7f {
	case 126:
		return int64(binary.BigEndian.Uint16(h[2:]))
	case 127:
		return int64(binary.BigEndian.Uint64(h[2:]))
	}
	return int64(h[1] & 0x7f)
}

// parseFrames consumes data (borrowed from the loop's read buffer, not
// retained) as server frames: payload goes to onPayload, control frames to
// onControl. It returns false when the session must end.
func (l *loop) parseFrames(c *conn, data []byte) bool {
	for len(data) > 0 && c.state != stDone {
		if c.payLeft > 0 {
			k := int(min(c.payLeft, int64(len(data))))
			if c.ctl {
				c.ctlBuf = append(c.ctlBuf, data[:k]...)
			} else {
				l.onPayload(c, data[:k])
			}
			c.payLeft -= int64(k)
			data = data[k:]
			if c.payLeft == 0 && c.ctl && !l.onControl(c) {
				return false
			}
			continue
		}
		data = l.takeHeader(c, data)
		if c.hdrN < 2 || c.hdrN < wsframe.HeaderLen(c.hdr[1]) {
			continue
		}
		if !l.startFrame(c) {
			return false
		}
	}
	return true
}

// takeHeader copies header bytes from data into c.hdr and returns the rest.
func (l *loop) takeHeader(c *conn, data []byte) []byte {
	for len(data) > 0 && (c.hdrN < 2 || c.hdrN < wsframe.HeaderLen(c.hdr[1])) {
		c.hdr[c.hdrN] = data[0]
		c.hdrN++
		data = data[1:]
	}
	return data
}

// startFrame acts on a complete header in c.hdr.
func (l *loop) startFrame(c *conn) bool {
	h := c.hdr[:c.hdrN]
	c.hdrN = 0
	if h[1]&0x80 != 0 {
		l.fail(c, "masked server frame")
		return false
	}
	c.payLeft = frameLen(h)
	op := h[0] & 0x0f
	c.ctl = op >= 8
	if !c.ctl {
		return true
	}
	c.ctlOp, c.ctlBuf = op, c.ctlBuf[:0]
	if c.payLeft > 125 {
		l.fail(c, "oversized control frame")
		return false
	}
	if c.payLeft == 0 {
		return l.onControl(c)
	}
	return true
}

// onControl handles a complete control frame: a close ends the session, a
// ping gets its pong (at the next frame boundary of a stream).
func (l *loop) onControl(c *conn) bool {
	c.ctl = false
	switch c.ctlOp {
	case 8:
		l.fail(c, "closed by proxy")
		return false
	case 9:
		if l.midFrame(c) {
			c.pongDue = true
			return true
		}
		l.queuePong(c)
		return l.flushBuf(c)
	}
	return true
}

// queuePong appends a masked pong echoing the last ping's payload to c.wbuf.
func (l *loop) queuePong(c *conn) {
	c.pongDue = false
	start := len(c.wbuf)
	c.wbuf = append(c.wbuf, 0x8a, 0x80|byte(len(c.ctlBuf)))
	c.wbuf = append(c.wbuf, maskKey[:]...)
	c.wbuf = append(c.wbuf, c.ctlBuf...)
	maskBytes(c.wbuf[start+6:], 0)
}

// onPayload counts payload bytes p (borrowed) and, on echo consoles, cuts
// them into messages to time each round trip.
func (l *loop) onPayload(c *conn, p []byte) {
	c.recv += int64(len(p))
	l.stats.recv.Add(int64(len(p)))
	if c.s.Mode != ModeEcho {
		return
	}
	size := l.cl.wire.msgSize
	for len(p) > 0 && c.state != stDone {
		if c.msgOff < 8 {
			k := copy(c.stamp[c.msgOff:], p)
			c.msgOff += k
			p = p[k:]
			continue
		}
		k := min(size-c.msgOff, len(p))
		c.msgOff += k
		p = p[k:]
		if c.msgOff == size {
			c.msgOff = 0
			l.onReply(c)
		}
	}
	if size == 8 && c.msgOff == 8 && c.state != stDone {
		c.msgOff = 0
		l.onReply(c)
	}
}

// onReply records one echoed message's round trip.
func (l *loop) onReply(c *conn) {
	sent := int64(binary.LittleEndian.Uint64(c.stamp[:]))
	l.rtt.Record(l.now - time.Duration(sent))
	if c.s.Probe && c.replies == 0 {
		l.hs.Record(l.now - c.start) // the first byte back: established
	}
	c.replies++
	l.stats.msgs.Add(1)
	if c.verifyAt > 0 && c.replies >= c.verifyAt {
		c.verifyAt = 0
		l.stats.verifying.Add(-1)
	}
	if c.s.Churn && c.replies >= int64(l.cl.churnMessages) {
		l.closeConn(c)
		return
	}
	if c.s.Churn {
		l.sendMessage(c)
	}
}
