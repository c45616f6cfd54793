//go:build linux

package loop

import (
	"errors"
	"net"

	"github.com/gobwas/ws"
	"github.com/panjf2000/gnet/v2"
	"github.com/valyala/bytebufferpool"

	"github.com/consoleproxy/consoleproxy/relay"
	"github.com/consoleproxy/consoleproxy/wsframe"
)

// clientData parses the client's frames in place and writes their payloads
// to the host. While the host has not taken earlier bytes, the rest waits in
// gnet's buffer and reading the client is paused, so TCP pushes the client
// back (HostWritable resumes). Runs on the loop.
func (ss *session) clientData() gnet.Action {
	c := ss.c
	for {
		if pending := ss.host.Pending(); pending > 0 {
			ss.hostFull = true
			// What the session holds for its host while it waits (HeldUp).
			ss.heldUp.Store(int64(ss.heldIn() + pending))
			return ss.updateRead()
		}
		ss.hostFull = false
		avail := c.InboundBuffered()
		if avail == 0 {
			ss.heldUp.Store(0)
			return ss.updateRead()
		}
		// Peek may copy when gnet's ring wraps; either way every byte peeked
		// is parsed (unmasked in place) and discarded in this call.
		buf, _ := c.Peek(min(avail, maxPeek))
		if len(buf) == 0 {
			return ss.updateRead()
		}
		if act := ss.forward(buf); act != gnet.None {
			return act
		}
	}
}

// updateRead pauses reading the client while the host holds bytes back or
// the client's own outbound buffer is over its bound, and resumes it
// otherwise. Loop only.
func (ss *session) updateRead() gnet.Action {
	want := ss.hostFull || ss.outFull
	if want == ss.c.ReadPaused() {
		return gnet.None
	}
	var err error
	if want {
		err = ss.c.PauseRead()
	} else {
		err = ss.c.ResumeRead()
	}
	if err != nil {
		return gnet.Close
	}
	return gnet.None
}

// answer is what a batch owes the client once its data went to the host:
// a pong for the last ping (RFC 6455 §5.5.3 allows answering only the most
// recent), or the echo of its close.
type answer struct {
	pong      [wsframe.MaxControlPayload]byte
	pongLen   int // -1: no ping
	closing   bool
	closeCode ws.StatusCode
}

// forward parses buf, writes its data payloads to the host in one writev,
// discards what it parsed, and only then answers the client: a failed write
// to the client runs OnClose inside gnet, and by then the batch is done, so
// OnClose's forwardRest starts from the next unparsed byte. buf is borrowed
// from gnet for this call only.
func (ss *session) forward(buf []byte) gnet.Action {
	b := getUpBatch(buf)
	defer b.put()
	ans := answer{pongLen: -1}
	ss.inBatch = true
	n, act := ss.parse(b, &ans)
	if act != gnet.None {
		return act // the connection is closing or closed: inBatch stays
	}
	if ans.closing {
		ss.closing()
	}
	if act := ss.toHost(b.iov, b.size); act != gnet.None {
		return act
	}
	_, _ = ss.c.Discard(n)
	ss.inBatch = false
	return ss.answer(&ans)
}

// parse feeds b.buf to the frame parser until it is used up or a close frame
// ends it, collecting data payloads in b and the owed answer in ans. It
// returns the bytes parsed.
func (ss *session) parse(b *upBatch, ans *answer) (int, gnet.Action) {
	var scratch *bytebufferpool.ByteBuffer
	if ss.base64 {
		scratch = b.scratchBuffer()
	}
	off := 0
	for off < len(b.buf) && !ans.closing {
		ev, n, err := ss.parser.Next(b.buf[off:])
		off += n
		if err != nil {
			var pe *wsframe.ProtocolError
			if errors.As(err, &pe) {
				return off, ss.fail(endFor(uint16(pe.Code)))
			}
			return off, ss.fail(EndProtocolError)
		}
		switch ev.Kind {
		case wsframe.Data:
			if act := ss.data(b, ev, off, scratch); act != gnet.None {
				return off, act
			}
		case wsframe.Control:
			ss.control(ev, ans)
		}
	}
	if scratch != nil {
		b.addOther(scratch.B) // decoded bytes: in the batch's writev, after the rest
	}
	return off, gnet.None
}

// data takes one data payload: in place (binary), or decoded into scratch
// (base64); the security proxy's client answers are taken first.
func (ss *session) data(b *upBatch, ev wsframe.Event, end int, scratch *bytebufferpool.ByteBuffer) gnet.Action {
	if len(ev.Payload) == 0 {
		return gnet.None
	}
	if ss.base64 {
		before := len(scratch.B)
		var err error
		if scratch.B, err = ss.decode(scratch.B, ev); err != nil {
			return ss.fail(EndInvalidUTF8)
		}
		if ss.rfbNeed > 0 {
			rest, act := ss.takeRFB(scratch.B[before:])
			if act != gnet.None {
				return act
			}
			scratch.B = append(scratch.B[:before], rest...)
		}
		return gnet.None
	}
	p := ev.Payload
	if ss.rfbNeed > 0 {
		var act gnet.Action
		if p, act = ss.takeRFB(p); act != gnet.None {
			return act
		}
	}
	b.add(p, end)
	return gnet.None
}

// toHost writes iov (size bytes) to the host and accounts for it. What the
// host does not take at once is copied and held by relay.
func (ss *session) toHost(iov [][]byte, size int) gnet.Action {
	if size == 0 {
		return gnet.None
	}
	if _, err := ss.host.Write(iov); err != nil {
		return ss.fail(EndHostError)
	}
	ss.up.Add(int64(size))
	ss.srv.metrics.up.Add(size)
	ss.lastData.Store(ss.srv.cfg.Now().UnixNano())
	return gnet.None
}

// decode appends the base64 payload's bytes to scratch.
func (ss *session) decode(scratch []byte, ev wsframe.Event) ([]byte, error) {
	var err error
	if scratch, err = ss.b64.Decode(scratch, ev.Payload); err != nil {
		return scratch, err
	}
	if ev.MessageEnd {
		err = ss.b64.End()
	}
	return scratch, err
}

// control notes what a ping or the client's close asks for; the answer is
// written after the batch's data went to the host (answer).
func (ss *session) control(ev wsframe.Event, ans *answer) {
	switch ev.OpCode {
	case ws.OpPing:
		ans.pongLen = copy(ans.pong[:], ev.Payload)
	case ws.OpClose:
		code, _ := wsframe.ParseClose(ev.Payload)
		if code == ws.StatusNoStatusRcvd {
			code = ws.StatusNormalClosure
		}
		ans.closing, ans.closeCode = true, code
	}
}

// closing marks the session ended by its client before the batch's data
// goes to the host, so a close of the client inside a later write does not
// parse anything after the close frame.
func (ss *session) closing() {
	reason := EndClientClosed
	if ss.ended.CompareAndSwap(false, true) {
		ss.endReason.Store(&reason)
	}
}

// answer writes what the batch owes the client. A failed write closed the
// connection inside gnet (OnClose ran): nothing touches it afterwards.
func (ss *session) answer(ans *answer) gnet.Action {
	c := ss.c
	if ans.closing {
		ss.closeHostWrite() // what the client sent reaches the host first
		_, _ = c.Write(wsframe.CloseFrame(ans.closeCode))
		return gnet.Close
	}
	if ans.pongLen < 0 {
		return gnet.None
	}
	var frame [wsframe.MaxControlPayload + 2]byte
	if _, err := c.Write(wsframe.AppendControl(frame[:0], ws.OpPong, ans.pong[:ans.pongLen])); err != nil {
		return gnet.Close
	}
	ss.sampleOut()
	// Pongs for a client that reads nothing must not pile up: past the
	// bound, reading its pings waits until its outbound buffer drains.
	ss.outFull = c.OutboundBuffered() > ss.srv.outBound()
	return gnet.None
}

// sendFirst sends the console bytes that came with the CONNECT answer as
// the first frame. Runs on the loop, before the host socket starts. False
// means the write failed and gnet closed the connection inside it.
func (ss *session) sendFirst(first []byte) bool {
	if _, err := ss.c.Write(ss.dataFrame(first)); err != nil {
		return false
	}
	ss.down.Add(int64(len(first)))
	ss.srv.metrics.down.Add(len(first))
	return true
}

// dataFrame is p as one data frame of the session's subprotocol: binary,
// or base64 text. Off the hot path (it allocates).
func (ss *session) dataFrame(p []byte) []byte {
	if ss.base64 {
		frame := wsframe.AppendHeader(nil, ws.OpText, wsframe.Base64EncodedLen(len(p)))
		return wsframe.AppendBase64(frame, p)
	}
	return append(wsframe.AppendHeader(nil, ws.OpBinary, len(p)), p...)
}

// HostData frames n host bytes in b (header written into the headroom, no
// copy) and writes them to the client. Runs in the poller's Poll, on the
// client's loop.
func (ss *session) HostData(b *bytebufferpool.ByteBuffer, n int) {
	if ss.base64 {
		ss.hostDataBase64(b, n)
		return
	}
	start := relay.Headroom - wsframe.HeaderSize(n)
	wsframe.PutHeader(b.B[start:], ws.Header{Fin: true, OpCode: ws.OpBinary, Length: int64(n)})
	ss.queue(pendingFrame{buf: b, n: n}, b.B[start:relay.Headroom+n])
}

// hostDataBase64 re-encodes host bytes as one base64 text frame.
func (ss *session) hostDataBase64(b *bytebufferpool.ByteBuffer, n int) {
	enc := wsframe.Base64EncodedLen(n)
	out := bytebufferpool.Get()
	out.B = wsframe.AppendHeader(out.B[:0], ws.OpText, enc)
	out.B = wsframe.AppendBase64(out.B, b.B[relay.Headroom:relay.Headroom+n])
	relay.PutBuffer(b)
	ss.queue(pendingFrame{buf: out, n: n, pooled: true}, out.B)
}

// pendingFrame is one host frame on its way to the client: the buffer
// that holds it and the host bytes it carries.
type pendingFrame struct {
	buf    *bytebufferpool.ByteBuffer
	n      int  // host bytes it carries
	pooled bool // from bytebufferpool (base64), not relay's read pool
}

// queue writes a host frame (frame, a slice of f.buf) on the client's
// loop, which drives the poller that read it: no hand-over, no wake-up.
// gnet writes it to the socket or copies what the socket does not take,
// so f.buf goes back at once, and the whole frame (header and base64
// growth included) is in the outbound buffer the session samples for its
// bound. Frames stay in order: every host frame takes this path, and what
// is queued with AsyncWrite (control frames, the close frame) is whole
// frames too. A failed write closed the client inside the call (OnClose
// ran). Loop (the poller's HostData).
func (ss *session) queue(f pendingFrame, frame []byte) {
	err := net.ErrClosed
	if phase(ss.phase.Load()) == phaseRelaying {
		_, err = ss.c.Write(frame)
	}
	f.release()
	out := 0
	if err == nil { // written: the session was relaying
		out = ss.c.OutboundBuffered()
		ss.down.Add(int64(f.n))
		ss.srv.metrics.down.Add(f.n)
		now := ss.srv.cfg.Now().UnixNano()
		ss.lastData.Store(now)
		ss.sampleOutAt(out, now)
	}
	ss.host.Ack(f.n, out) // the host bytes read are now the client's outbound buffer
}

// closeHost closes the host socket from the session's loop, which drives
// its poller: at once.
func (ss *session) closeHost() { ss.host.CloseOnDriver() }

// closeHostWrite is closeHost after the bytes held for the host
// (relay.Conn.CloseWrite). Loop.
func (ss *session) closeHostWrite() { ss.host.CloseWriteOnDriver() }

// pollerIndex is the relay poller this session's host steps and socket
// belong on: the one its client's loop drives (every loop drives one,
// drivePoller), so the host's data arrives on the client's loop. Any
// goroutine (loopPoller is read-only once the loops run).
func (ss *session) pollerIndex() int {
	i, ok := ss.srv.loopPoller[ss.raw.EventLoop()]
	if !ok {
		panic("loop: a session on an event loop that drives no relay poller")
	}
	return i
}

func (f pendingFrame) release() {
	if f.pooled {
		bytebufferpool.Put(f.buf)
	} else {
		relay.PutBuffer(f.buf)
	}
}

// HostWritable resumes held-back client input. Poller goroutine.
func (ss *session) HostWritable() { _ = ss.raw.Wake(nil) }

// heldIn is the client's bytes the session holds and has not parsed:
// gnet's buffer, and for wss:// the plaintext and undecrypted records.
// Loop.
func (ss *session) heldIn() int {
	if ss.tls != nil {
		return ss.tls.heldIn()
	}
	return ss.c.InboundBuffered()
}

// HostClosed ends the session: 1000 after every byte the host sent, or
// 1011 when the socket failed. Poller goroutine.
func (ss *session) HostClosed(err error) {
	if errors.Is(err, relay.ErrWriteTimeout) {
		ss.end(EndHostStalled)
		return
	}
	if err != nil {
		ss.end(EndHostError)
		return
	}
	ss.end(EndHostClosed)
}

// Resample reports the client's outbound buffer to the paused relay. Runs
// in the poller's Poll, on the client's loop.
func (ss *session) Resample() {
	if phase(ss.phase.Load()) == phaseRelaying {
		ss.host.SetOutbound(ss.c.OutboundBuffered())
		ss.sampleOut()
	}
}
