//go:build linux

package loop

import (
	"errors"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/consoleproxy/consoleproxy/relay"
	"github.com/consoleproxy/consoleproxy/relay/rfb"
)

// The RFB security proxy (Config.Security, package relay/rfb): relay.Open
// runs the host's side. Once the compute host is connected (and any CONNECT
// answered) and has sent its RFB version (awaited on a relay poller: a host
// that never speaks holds no goroutine), rfb.Proxy.Secure runs the host's
// side of the RFB security handshake on one of its bounded handshake
// goroutines, within the connect deadline (the same one throughout), and
// hands back the socket: as it is with None, with its VeNCrypt TLS client
// otherwise, whose records the relay poller then reads and seals itself
// (relay.AttachTLS; no goroutine or socket pair per session). Then the loop
// sends the 101 and plays the server to the client (RFB 3.8, security type
// None, SecurityResult OK, a message each after the client's answers), drops
// the client's 13 bytes after checking them, and only then starts the host
// socket.

// hostSecurity is the Server as relay.Open's Securer: rfb.Proxy.Secure,
// counted in tlsWG so that shutdown waits for it.
type hostSecurity Server

// hostSecurity is the Securer for relay.Target, nil without the security
// proxy (a conversion: nothing is allocated).
func (s *Server) hostSecurity() relay.Securer {
	if s.cfg.Security == nil {
		return nil
	}
	return (*hostSecurity)(s)
}

// GreetingLen is RFB's ProtocolVersion.
func (*hostSecurity) GreetingLen() int { return rfb.HostGreetingLen }

// Secure runs rfb.Proxy.Secure. Poller goroutine: does not block.
func (h *hostSecurity) Secure(fd int, first []byte, host string, deadline time.Time, done func(int, *relay.TLSClient, error)) {
	h.tlsWG.Add(1)
	h.offLoop.Add(1)
	h.cfg.Security.Secure(fd, first, host, deadline, func(sec rfb.Secured, err error) {
		defer h.tlsWG.Done()
		defer h.offLoop.Add(-1)
		done(sec.Fd, sec.TLS, err)
	})
}

// securityResult maps an RFB security handshake error to its result and a fixed
// phrase for the log (never the peer's bytes).
func securityResult(err error) (Result, string) {
	switch {
	case errors.Is(err, rfb.ErrBusy):
		return ResultOverloaded, rfb.Reason(err)
	case errors.Is(err, rfb.ErrSocket):
		return ResultHostUnreachable, rfb.Reason(err)
	case errors.Is(err, rfb.ErrVeNCryptTLS):
		return ResultVeNCryptFailed, rfb.Reason(err)
	}
	return ResultRFBFailed, rfb.Reason(err)
}

// greet sends the security proxy's first handshake message and starts
// collecting the client's answers. Loop; the host socket is started only
// once the client is through (takeRFB), so no host byte can overtake the
// proxy's messages. False means the write failed: gnet closed the client
// inside it.
func (ss *session) greet() bool {
	ss.rfbNeed = rfb.ClientReplyLen
	_, err := ss.c.Write(ss.dataFrame(rfb.GreetVersion))
	return err == nil
}

// takeRFB collects the client's answers from the front of p, sends the next
// handshake message after each, and returns the rest of p, which is the
// host's. A wrong answer ends the session with 1008. Loop.
func (ss *session) takeRFB(p []byte) ([]byte, gnet.Action) {
	for len(p) > 0 && ss.rfbNeed > 0 {
		off := rfb.ClientReplyLen - ss.rfbNeed
		end := rfb.ClientVersionLen // the version's bytes, then the choice's
		if off >= end {
			end = rfb.ClientReplyLen
		}
		n := min(end-off, len(p))
		copy(ss.rfbReply[off:], p[:n])
		p, ss.rfbNeed = p[n:], ss.rfbNeed-n
		switch {
		case off+n < end:
			return p, gnet.None
		case end == rfb.ClientVersionLen:
			if rfb.CheckClientVersion(ss.rfbReply[:end]) != nil {
				return nil, ss.fail(EndRFBClient)
			}
			if _, err := ss.c.Write(ss.dataFrame(rfb.GreetTypes)); err != nil {
				return nil, gnet.Close // closed inside the write
			}
		default:
			if rfb.CheckClientChoice(ss.rfbReply[rfb.ClientVersionLen]) != nil {
				return nil, ss.fail(EndRFBClient)
			}
			if _, err := ss.c.Write(ss.dataFrame(rfb.GreetResult)); err != nil {
				return nil, gnet.Close // closed inside the write
			}
			ss.host.StartOnDriver() // the loop drives the host's poller
		}
	}
	return p, gnet.None
}
