package loop

import (
	"context"
	"errors"

	"github.com/gobwas/ws"
	"github.com/panjf2000/gnet/v2"
	"github.com/valyala/bytebufferpool"

	"github.com/consoleproxy/consoleproxy/relay"
	"github.com/consoleproxy/consoleproxy/wsframe"
)

// clientData parses the client's frames in place and writes their payloads
// to the host. While the host has not taken earlier bytes, input is held
// back in gnet's buffer (bounded by MaxClientBacklog). Runs on the loop.
func (ss *session) clientData() gnet.Action {
	c := ss.c
	for {
		if ss.host.Pending() > 0 {
			if c.InboundBuffered() > ss.srv.cfg.MaxClientBacklog {
				return ss.fail(EndClientBacklog)
			}
			return gnet.None // HostWritable wakes us
		}
		avail := c.InboundBuffered()
		if avail == 0 {
			return gnet.None
		}
		// Peek may copy when gnet's ring wraps; either way every byte peeked
		// is parsed (unmasked in place) and discarded in this call.
		buf, _ := c.Peek(min(avail, maxPeek))
		act := ss.forward(buf)
		_, _ = c.Discard(len(buf))
		if act != gnet.None {
			return act
		}
	}
}

// forward parses buf whole and writes the data payloads to the host in one
// writev. buf is borrowed from gnet for this call only.
func (ss *session) forward(buf []byte) gnet.Action {
	iov := ss.iov[:0]
	scratch := ss.scratch[:0]
	defer func() { ss.iov = iov[:0] }()
	for len(buf) > 0 {
		ev, n, err := ss.parser.Next(buf)
		buf = buf[n:]
		if err != nil {
			var pe *wsframe.ProtocolError
			if errors.As(err, &pe) {
				return ss.fail(endFor(uint16(pe.Code)))
			}
			return ss.fail(EndProtocolError)
		}
		switch ev.Kind {
		case wsframe.Data:
			if len(ev.Payload) == 0 {
				continue
			}
			if ss.base64 {
				before := len(scratch)
				if scratch, err = ss.decode(scratch, ev); err != nil {
					return ss.fail(EndInvalidUTF8)
				}
				if ss.rfbNeed > 0 {
					rest, act := ss.takeRFB(scratch[before:])
					if act != gnet.None {
						return act
					}
					scratch = append(scratch[:before], rest...)
				}
				continue
			}
			p := ev.Payload
			if ss.rfbNeed > 0 {
				var act gnet.Action
				if p, act = ss.takeRFB(p); act != gnet.None {
					return act
				}
			}
			if len(p) > 0 {
				iov = append(iov, p)
			}
		case wsframe.Control:
			if act := ss.control(ev, iov, scratch); act != gnet.None {
				return act
			}
		}
	}
	if len(scratch) > 0 {
		iov = append(iov, scratch)
		ss.scratch = scratch
	}
	return ss.toHost(iov)
}

// toHost writes iov to the host and accounts for it.
func (ss *session) toHost(iov [][]byte) gnet.Action {
	if len(iov) == 0 {
		return gnet.None
	}
	total := 0
	for _, b := range iov {
		total += len(b)
	}
	if _, err := ss.host.Write(iov); err != nil {
		return ss.fail(EndHostError)
	}
	ss.up.Add(int64(total))
	ss.srv.metrics.up.Add(total)
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

// control answers pings and the client's close.
func (ss *session) control(ev wsframe.Event, iov [][]byte, scratch []byte) gnet.Action {
	switch ev.OpCode {
	case ws.OpPing:
		_, _ = ss.c.Write(wsframe.AppendControl(nil, ws.OpPong, ev.Payload))
	case ws.OpClose:
		if len(scratch) > 0 {
			iov = append(iov, scratch)
		}
		ss.toHost(iov) // what came before the close still reaches the host
		code, _ := wsframe.ParseClose(ev.Payload)
		if code == ws.StatusNoStatusRcvd {
			code = ws.StatusNormalClosure
		}
		reason := EndClientClosed
		if ss.ended.CompareAndSwap(false, true) {
			ss.endReason.Store(&reason)
			_, _ = ss.c.Write(wsframe.CloseFrame(code))
		}
		ss.host.CloseWrite() // what the client sent reaches the host first
		return gnet.Close
	}
	return gnet.None
}

// sendFirst sends the console bytes that came with the CONNECT answer as
// the first frame. Runs on the loop, before the host socket starts.
func (ss *session) sendFirst(first []byte) {
	_, _ = ss.c.Write(ss.dataFrame(first))
	ss.down.Add(int64(len(first)))
	ss.srv.metrics.down.Add(len(first))
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
// copy) and queues them to the client. Runs on the poller goroutine.
func (ss *session) HostData(b *bytebufferpool.ByteBuffer, n int) {
	if ss.base64 {
		ss.hostDataBase64(b, n)
		return
	}
	start := relay.Headroom - wsframe.HeaderSize(n)
	wsframe.PutHeader(b.B[start:], ws.Header{Fin: true, OpCode: ws.OpBinary, Length: int64(n)})
	ss.send(b, b.B[start:relay.Headroom+n], n)
}

// hostDataBase64 re-encodes host bytes as one base64 text frame.
func (ss *session) hostDataBase64(b *bytebufferpool.ByteBuffer, n int) {
	enc := wsframe.Base64EncodedLen(n)
	out := bytebufferpool.Get()
	out.B = wsframe.AppendHeader(out.B[:0], ws.OpText, enc)
	out.B = wsframe.AppendBase64(out.B, b.B[relay.Headroom:relay.Headroom+n])
	relay.PutBuffer(b)
	ss.sendPooled(out, n)
}

// send queues frame (a slice of b) to the client; b goes back to its pool
// once gnet has written or copied it (onSent). Poller goroutine.
func (ss *session) send(b *bytebufferpool.ByteBuffer, frame []byte, n int) {
	ss.queue(pendingFrame{buf: b, n: n}, frame)
}

func (ss *session) sendPooled(out *bytebufferpool.ByteBuffer, n int) {
	ss.queue(pendingFrame{buf: out, n: n, pooled: true}, out.B)
}

func (ss *session) queue(f pendingFrame, frame []byte) {
	ss.sentQ.push(f)
	if err := ss.c.AsyncWrite(frame, ss.onSentFn); err != nil {
		if f, ok := ss.sentQ.popNewest(); ok {
			f.release()
		}
		ss.host.Ack(f.n, 0)
	}
}

// onSent is the AsyncWrite callback of every host frame: it runs on the
// loop, in the order the frames were queued.
func (ss *session) onSent(c gnet.Conn, err error) error {
	f, ok := ss.sentQ.pop()
	if !ok {
		return nil
	}
	f.release()
	ss.sent(c, f.n, err)
	return nil
}

func (f pendingFrame) release() {
	if f.pooled {
		bytebufferpool.Put(f.buf)
	} else {
		relay.PutBuffer(f.buf)
	}
}

// sent runs on the loop after gnet took n host bytes (err nil) or dropped
// them (the client is gone).
func (ss *session) sent(c gnet.Conn, n int, err error) {
	out := 0
	if err == nil && phase(ss.phase.Load()) == phaseRelaying {
		out = c.OutboundBuffered()
		ss.down.Add(int64(n))
		ss.srv.metrics.down.Add(n)
		ss.lastData.Store(ss.srv.cfg.Now().UnixNano())
	}
	ss.host.Ack(n, out)
}

// HostWritable resumes held-back client input. Poller goroutine.
func (ss *session) HostWritable() { _ = ss.c.Wake(nil) }

// HostClosed ends the session: 1000 after every byte the host sent, or
// 1011 when the socket failed. Poller goroutine.
func (ss *session) HostClosed(err error) {
	if err != nil {
		ss.end(EndHostError)
		return
	}
	ss.end(EndHostClosed)
}

// Resample reports the client's outbound buffer to the paused relay.
// Poller goroutine.
func (ss *session) Resample() {
	_ = ss.c.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		if phase(ss.phase.Load()) == phaseRelaying {
			ss.host.SetOutbound(ss.c.OutboundBuffered())
		}
		return nil
	}))
}
