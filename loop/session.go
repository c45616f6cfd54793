//go:build linux

package loop

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/panjf2000/gnet/v2"
	"github.com/valyala/bytebufferpool"

	"github.com/consoleproxy/consoleproxy/relay"
	"github.com/consoleproxy/consoleproxy/relay/reuse"
	"github.com/consoleproxy/consoleproxy/relay/rfb"
	"github.com/consoleproxy/consoleproxy/relay/tokens"
	"github.com/consoleproxy/consoleproxy/wsframe"
)

type phase int32

const (
	phaseHandshake phase = iota
	phaseAuthorizing
	phaseRelaying
	phaseClosed
)

// session is one client connection from accept to close.
//
// Ownership: fields under "loop" are touched only on the client's event loop;
// the atomics are shared with the worker pool, relay's poller and the sweeper.
type session struct {
	srv *Server
	id  uint64 // unique in the process (Server.Sessions, EndSession); set at accept, then read-only
	// c is the client as the session reads and writes it: the socket, or
	// for wss:// its tlsConn (plaintext). It changes only on the loop in
	// the handshake phase; goroutines that may run then use raw.
	c   gnet.Conn
	raw gnet.Conn // the client's socket
	tls *tlsConn  // wss:// only

	// Any goroutine.
	phase      atomic.Int32
	ended      atomic.Bool         // end() ran: the first reason wins
	endReason  atomic.Pointer[End] // why the session ended
	timedOut   atomic.Bool         // the sweeper closed a handshake
	drainClose atomic.Bool         // close the client once its outbound buffer drains
	lastData   atomic.Int64        // unix nanos of the last data either way (idle timeout)
	clientSeen atomic.Int64        // unix nanos of the last bytes from the client (ping timeout)
	lastPing   atomic.Int64        // unix nanos of the last ping sent
	up, down   atomic.Int64        // payload bytes each way
	heldUp     atomic.Int64        // client bytes held for the host, as last seen on the loop
	host       *relay.Conn         // set on the loop before the poller starts, then read-only
	expires    atomic.Int64        // unix seconds: --enforce-session-timeout; 0 = never
	// holdSince is when the client was last seen taking bytes while the
	// proxy held some for it (unix nanos); 0 while it holds none.
	holdSince atomic.Int64
	// The token's key, stored by the worker before its lookup, and why the
	// reuse guard ended the session, if it did (revoke.go).
	tokenKey atomic.Pointer[reuse.Key]
	guardEnd atomic.Pointer[End]

	// Loop only.
	accepted int64 // unix nanos (cfg.Now) of the accept; the handshake deadline is HandshakeTimeout after it
	peer     netip.Addr
	client   netip.Addr      // the client's address, through trusted proxies
	hs       *handshakeState // until the 101 is written or the session closes
	rec      sessionRecord
	release  func() // gives the token back to the reuse guard

	// lim is what the session holds of the limits (limits.go).
	lim sessionLimits

	parser wsframe.Parser
	b64    *wsframe.Base64Decoder // the "base64" subprotocol only
	// The session's flags, side by side (each bool alone would take a
	// padded word of the struct, which every idle session pays).
	secure   bool // the client came over TLS
	counted  bool // the handshake result was counted
	admitted bool // counted against --max-sessions
	// Why reading the client is paused (updateRead): the host holds bytes
	// back, or the client's outbound buffer is over its bound.
	hostFull, outFull bool
	// inBatch is set while forward parses a batch it has not discarded: a
	// client closed inside a write then (the security proxy's messages)
	// must not have that batch parsed again by forwardRest.
	inBatch     bool
	base64      bool   // the "base64" subprotocol; set before relaying, then read-only
	flushedSeen uint64 // the client's Flushed() at the last sample (sampleOut)

	// rfbNeed is how many bytes of the client's answers to the security
	// proxy (its RFB version, its security type) are still to come,
	// collected in rfbReply and never relayed.
	rfbNeed  int
	rfbReply [rfb.ClientReplyLen]byte
}

// sessionRecord is what a session keeps of its token's record for its log
// lines (the whole tokens.Record is 112 bytes every idle session would pay).
type sessionRecord struct {
	instance, host string
	port           int
}

func recordOf(r tokens.Record) sessionRecord {
	return sessionRecord{instance: r.InstanceUUID, host: r.Host, port: r.Port}
}

func newSession(s *Server, c gnet.Conn) *session {
	now := s.cfg.Now()
	ss := &session{srv: s, id: s.nextID.Add(1), c: c, raw: c, accepted: now.UnixNano(), peer: peerAddr(c)}
	ss.client = ss.peer
	return ss
}

func (ss *session) onTraffic() gnet.Action {
	ss.clientSeen.Store(ss.srv.cfg.Now().UnixNano())
	if ss.tls != nil {
		return ss.tls.onTraffic()
	}
	return ss.dispatch()
}

// dispatch runs the phase's logic on what the client sent (plaintext for
// wss://).
func (ss *session) dispatch() gnet.Action {
	switch phase(ss.phase.Load()) {
	case phaseHandshake:
		return ss.handshake()
	case phaseAuthorizing:
		// Bytes sent before the 101 wait in gnet's buffer; past one batch,
		// reading pauses until the session relays (authorized wakes it).
		if ss.c.InboundBuffered() >= maxPeek && ss.c.PauseRead() != nil {
			return gnet.Close
		}
		return gnet.None
	case phaseRelaying:
		return ss.clientData()
	}
	return gnet.Close
}

// count records the handshake's result once.
func (ss *session) count(r Result) {
	if ss.counted {
		return
	}
	ss.counted = true
	ss.srv.metrics.results[r].Inc()
}

// admit counts the session against --max-sessions; false means over the cap.
func (ss *session) admit() bool {
	s := ss.srv
	n := s.admitted.Add(1)
	if s.cfg.MaxSessions > 0 && n > int64(s.cfg.MaxSessions) {
		s.admitted.Add(-1)
		return false
	}
	ss.admitted = true
	return true
}

func (ss *session) unadmit() {
	ss.leaveIP()
	if ss.admitted {
		ss.admitted = false
		ss.srv.admitted.Add(-1)
	}
}

// end finishes a relaying session for reason from any goroutine: a close
// frame queued behind any data already queued, then the TCP close.
func (ss *session) end(reason End) {
	if !ss.ended.CompareAndSwap(false, true) {
		return
	}
	ss.endReason.Store(&reason)
	if phase(ss.phase.Load()) != phaseRelaying {
		// Decided on the loop: the session may be turning relaying there
		// right now (its 101 written), and then it gets its close frame.
		err := ss.raw.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			if phase(ss.phase.Load()) == phaseRelaying {
				ss.closeRelaying(reason)
				return nil
			}
			return ss.raw.Close()
		}))
		if err != nil {
			_ = ss.raw.Close()
		}
		return
	}
	ss.closeRelaying(reason)
}

// closeRelaying closes the host (unless it ended the session) and queues
// the close frame behind any data already queued. Any goroutine.
func (ss *session) closeRelaying(reason End) {
	if ss.host != nil && reason != EndHostClosed {
		ss.host.Close()
	}
	_ = ss.c.AsyncWrite(wsframe.CloseFrame(wsframeCode(reason)), ss.closeAfterFrame)
}

// closeAfterFrame runs on the loop once the close frame is written or
// queued: close now if nothing is left to send, else when the sweeper sees
// the outbound buffer empty (gnet's close gives up on a slow reader).
func (ss *session) closeAfterFrame(c gnet.Conn, err error) error {
	if err != nil || c.OutboundBuffered() == 0 {
		return c.Close()
	}
	ss.drainClose.Store(true) // OnOutboundDrained closes, or --write-timeout
	ss.sampleOut()
	return nil
}

// fail ends the session from its own loop: close frame now, then close.
// If the close frame's write fails, gnet has closed the connection inside
// it (OnClose ran); nothing here touches the connection afterwards.
func (ss *session) fail(reason End) gnet.Action {
	if ss.host != nil {
		ss.closeHost()
	}
	if ss.ended.CompareAndSwap(false, true) {
		ss.endReason.Store(&reason)
		_, _ = ss.c.Write(wsframe.CloseFrame(wsframeCode(reason)))
	}
	return gnet.Close
}

// stall ends a session whose client took no byte for --write-timeout while
// the proxy held bytes for it: no close frame (it would not be read), the
// connection closes at once. Loop.
func (ss *session) stall() {
	reason := EndClientStalled
	if ss.ended.CompareAndSwap(false, true) {
		ss.endReason.Store(&reason)
	}
	if ss.host != nil {
		ss.closeHost()
	}
	_ = ss.c.Close()
}

// sampleOut notes whether the client takes what the proxy holds for it:
// holdSince is cleared when nothing is held and moved on whenever the
// socket took bytes since the last sample. Loop.
func (ss *session) sampleOut() {
	if out := ss.c.OutboundBuffered(); out > 0 {
		ss.sampleOutAt(out, ss.srv.cfg.Now().UnixNano())
		return
	}
	ss.holdSince.Store(0)
}

// sampleOutAt is sampleOut with the outbound buffer and the time already
// read (the per-frame callback has both). Loop.
func (ss *session) sampleOutAt(out int, nanos int64) {
	if out == 0 {
		ss.holdSince.Store(0)
		return
	}
	if f := ss.c.Flushed(); f != ss.flushedSeen || ss.holdSince.Load() == 0 {
		ss.flushedSeen = f
		ss.holdSince.Store(nanos)
	}
}

// onClose runs on the loop when the client connection is gone.
func (ss *session) onClose() {
	prev := phase(ss.phase.Swap(int32(phaseClosed)))
	switch prev {
	case phaseHandshake:
		switch {
		case ss.timedOut.Load():
			ss.count(ResultHandshakeTimeout)
		case ss.tls != nil && ss.tls.stage == tlsHandshaking:
			// counted when the handshake goroutine's outcome arrives
			// (handshook): the client's alert may be what ended it
		default:
			ss.count(ResultClientGone)
		}
	case phaseAuthorizing:
		ss.count(ResultClientGone)
		ss.unadmit() // the worker's answer finds the session closed and cleans up
	case phaseRelaying:
		if !ss.ended.Load() && ss.rfbNeed == 0 && !ss.inBatch {
			ss.forwardRest() // the client left: what it sent still reaches the host
		} else if !ss.ended.Load() {
			ss.closeHost() // mid-batch or in the security handshake: nothing more is the host's
		}
		ss.finishRelaying()
	}
	ss.releaseHandshake()
	if ss.tls != nil {
		ss.tls.closed()
	}
}

// forwardRest parses what the client sent before its connection ended and
// writes the data to the host, which closes once it has taken it. It stops
// at a close frame or a protocol error and writes nothing to the client.
// Runs on the loop, in OnClose (gnet's inbound buffer is still readable
// there). The parser is at a batch boundary: forward discards what it
// parsed before anything can close the connection.
func (ss *session) forwardRest() {
	c := ss.c
	for c.InboundBuffered() > 0 {
		buf, _ := c.Peek(min(c.InboundBuffered(), maxPeek))
		if len(buf) == 0 {
			break
		}
		b := getUpBatch(buf)
		done := ss.parseRest(b)
		_, err := ss.host.Write(b.iov)
		if err == nil {
			ss.up.Add(int64(b.size))
			ss.srv.metrics.up.Add(b.size)
		}
		b.put()
		_, _ = c.Discard(len(buf))
		if done || err != nil {
			break
		}
	}
	ss.closeHostWrite()
}

// parseRest collects the data payloads of b.buf; true means the stream
// ended (a close frame or an error).
func (ss *session) parseRest(b *upBatch) bool {
	var scratch *bytebufferpool.ByteBuffer
	if ss.base64 {
		scratch = b.scratchBuffer()
		defer func() { b.addOther(scratch.B) }()
	}
	for off := 0; off < len(b.buf); {
		ev, n, err := ss.parser.Next(b.buf[off:])
		off += n
		switch {
		case err != nil, ev.Kind == wsframe.Control && ev.OpCode == ws.OpClose:
			return true
		case ev.Kind != wsframe.Data:
		case ss.base64:
			if scratch.B, err = ss.decode(scratch.B, ev); err != nil {
				return true
			}
		default:
			b.add(ev.Payload, off)
		}
	}
	return false
}

func (ss *session) finishRelaying() {
	s := ss.srv
	if ss.host != nil {
		ss.closeHost()
	}
	if ss.release != nil {
		ss.release()
	}
	ss.unadmit()
	s.metrics.active.Add(-1)
	reason := EndClientGone
	if r := ss.endReason.Load(); r != nil {
		reason = *r
	}
	dur := time.Duration(s.cfg.Now().UnixNano() - ss.accepted)
	s.metrics.ends[reason].Inc()
	s.metrics.duration.Update(dur.Seconds())
	s.cfg.Logger.Info("session end",
		"peer", ss.client.String(), "instance", ss.rec.instance,
		"host", net.JoinHostPort(ss.rec.host, strconv.Itoa(ss.rec.port)),
		"bytes_up", ss.up.Load(), "bytes_down", ss.down.Load(),
		"duration", dur.Round(time.Millisecond).String(), "result", string(ResultOK), "end", string(reason))
}

func wsframeCode(e End) ws.StatusCode { return ws.StatusCode(e.code()) }
