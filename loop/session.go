package loop

import (
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/panjf2000/gnet/v2"

	"github.com/consoleproxy/consoleproxy/relay"
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
	c   gnet.Conn

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
	host       *relay.Conn         // set on the loop before the poller starts, then read-only
	base64     bool                // the "base64" subprotocol; set before relaying, then read-only
	expires    atomic.Int64        // unix seconds: --enforce-session-timeout; 0 = never

	// Loop only.
	accepted time.Time
	deadline time.Time // handshake deadline
	peer     netip.Addr
	client   netip.Addr // the client's address, through trusted proxies
	secure   bool       // the client came over TLS (the plaintext end of a bridge)
	// originScheme is the accepted Origin's scheme ("" without an Origin),
	// for Nova's access_url_base rule once the record is known.
	originScheme string
	reqp         wsframe.RequestParser
	req          *wsframe.Request // during the handshake only
	key          [32]byte         // Sec-WebSocket-Key, copied out of the request
	keyLen       int
	proto        []byte // the chosen subprotocol (a static slice)
	counted      bool   // the handshake result was counted
	admitted     bool   // counted against --max-sessions
	rec          tokens.Record
	release      func() // gives the token back to the reuse guard

	// lim is what the session holds of the limits (limits.go).
	lim sessionLimits

	parser  wsframe.Parser
	iov     [][]byte
	scratch []byte // base64 decoding
	b64     wsframe.Base64Decoder

	// rfbNeed is how many bytes of the client's answers to the security
	// proxy (its RFB version, its security type) are still to come,
	// collected in rfbReply and never relayed.
	rfbNeed  int
	rfbReply [relay.ClientReplyLen]byte

	sentQ    sentQueue          // host frames in flight to the client (poller pushes, loop pops)
	onSentFn gnet.AsyncCallback // ss.onSent, bound once
}

func newSession(s *Server, c gnet.Conn) *session {
	now := s.cfg.Now()
	ss := &session{srv: s, c: c, accepted: now, deadline: now.Add(s.cfg.HandshakeTimeout),
		peer: peerAddr(c), req: &wsframe.Request{}}
	if e, ok := c.Context().(*enrolled); ok {
		ss.peer, ss.secure = e.peer, true
	}
	ss.client = ss.peer
	ss.onSentFn = ss.onSent
	return ss
}

func (ss *session) onTraffic() gnet.Action {
	ss.clientSeen.Store(ss.srv.cfg.Now().UnixNano())
	switch phase(ss.phase.Load()) {
	case phaseHandshake:
		return ss.handshake()
	case phaseAuthorizing:
		if ss.c.InboundBuffered() > ss.srv.cfg.MaxClientBacklog {
			return gnet.Close
		}
		return gnet.None // bytes sent before the 101 wait in gnet's buffer
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
		_ = ss.c.Close()
		return
	}
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
	ss.drainClose.Store(true)
	return nil
}

// fail ends the session from its own loop: close frame now, then close.
func (ss *session) fail(reason End) gnet.Action {
	if ss.ended.CompareAndSwap(false, true) {
		ss.endReason.Store(&reason)
		_, _ = ss.c.Write(wsframe.CloseFrame(wsframeCode(reason)))
	}
	if ss.host != nil {
		ss.host.Close()
	}
	return gnet.Close
}

// onClose runs on the loop when the client connection is gone.
func (ss *session) onClose() {
	prev := phase(ss.phase.Swap(int32(phaseClosed)))
	switch prev {
	case phaseHandshake:
		if ss.timedOut.Load() {
			ss.count(ResultHandshakeTimeout)
		} else {
			ss.count(ResultClientGone)
		}
	case phaseAuthorizing:
		ss.count(ResultClientGone)
		ss.unadmit() // the worker's answer finds the session closed and cleans up
	case phaseRelaying:
		if !ss.ended.Load() {
			ss.forwardRest() // the client left: what it sent still reaches the host
		}
		ss.finishRelaying()
	}
	ss.req = nil
}

// forwardRest parses what the client sent before its connection ended and
// writes the data to the host, which closes once it has taken it. Runs on
// the loop, in OnClose (gnet's inbound buffer is still readable there).
func (ss *session) forwardRest() {
	c := ss.c
	for c.InboundBuffered() > 0 {
		buf, _ := c.Peek(min(c.InboundBuffered(), maxPeek))
		iov := ss.iov[:0]
		for rest := buf; len(rest) > 0; {
			ev, n, err := ss.parser.Next(rest)
			rest = rest[n:]
			if err != nil || ev.Kind == wsframe.Control {
				break
			}
			if ev.Kind == wsframe.Data && len(ev.Payload) > 0 && !ss.base64 {
				iov = append(iov, ev.Payload)
			}
		}
		ss.toHost(iov)
		_, _ = c.Discard(len(buf))
	}
	ss.host.CloseWrite()
}

func (ss *session) finishRelaying() {
	s := ss.srv
	if ss.host != nil {
		ss.host.Close()
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
	dur := s.cfg.Now().Sub(ss.accepted)
	s.metrics.ends[reason].Inc()
	s.metrics.duration.Update(dur.Seconds())
	s.cfg.Logger.Info("session end",
		"peer", ss.client.String(), "instance", ss.rec.InstanceUUID,
		"host", net.JoinHostPort(ss.rec.Host, strconv.Itoa(ss.rec.Port)),
		"bytes_up", ss.up.Load(), "bytes_down", ss.down.Load(),
		"duration", dur.Round(time.Millisecond).String(), "result", string(ResultOK), "end", string(reason))
}

func wsframeCode(e End) ws.StatusCode { return ws.StatusCode(e.code()) }
