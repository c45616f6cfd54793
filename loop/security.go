//go:build linux

package loop

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/consoleproxy/consoleproxy/relay"
)

// The RFB security proxy (Config.Security, relay/rfb.go): once the compute
// host is connected (and any CONNECT answered), a goroutine of the session's
// own runs the host's side of the RFB security handshake, blocking, within
// the connect deadline. With None chosen the socket goes back to the relay
// poller as it is; with VeNCrypt the goroutine stays as the TLS bridge
// between the host and a socket pair whose other end the poller relays, as
// for wss:// clients (DECISIONS.md "VeNCrypt toward compute hosts"). Then
// the loop sends the 101 and plays the server to the client (RFB 3.8,
// security type None, SecurityResult OK, a message each after the client's
// answers), drops the client's 13 bytes after checking them, and only then
// starts the host socket.

// connected is where a dialed (and CONNECT-answered) session goes next:
// the security proxy if one is configured, else straight to its loop.
func (ss *session) connected(res *authResult) {
	if res.result != ResultOK || ss.srv.cfg.Security == nil {
		ss.deliver(res)
		return
	}
	s := ss.srv
	s.tlsWG.Add(1)
	go func() {
		defer s.tlsWG.Done()
		s.secureHost(ss, res)
	}()
}

// secureHost negotiates with the compute host on res.fd and delivers the
// result; with TLS it then bridges until either side ends.
func (s *Server) secureHost(ss *session, res *authResult) {
	nc, err := fileConn(res.fd, "compute-host")
	res.fd = -1 // nc owns it now
	if err != nil {
		ss.deliver(res.fail(ResultHostUnreachable, "compute host socket"))
		return
	}
	var conn net.Conn = nc
	if len(res.first) > 0 { // bytes that came with a CONNECT answer
		conn = &prefixConn{Conn: nc, prefix: res.first}
		res.first = nil
	}
	_ = nc.SetDeadline(res.deadline)
	ctx, cancel := context.WithDeadline(context.Background(), res.deadline)
	secured, scheme, err := s.cfg.Security.Negotiate(ctx, conn, res.rec.Host)
	cancel()
	if err != nil {
		nc.Close()
		ss.deliver(res.fail(securityResult(err)))
		return
	}
	_ = nc.SetDeadline(time.Time{})
	res.secured = true
	if scheme == relay.SchemeNone {
		if pc, ok := conn.(*prefixConn); ok && len(pc.prefix) > 0 {
			// Bytes after SecurityResult: the host spoke before ClientInit.
			nc.Close()
			ss.deliver(res.fail(ResultRFBFailed, "compute host sent data before ClientInit"))
			return
		}
		tc, ok := nc.(*net.TCPConn)
		if !ok {
			nc.Close()
			ss.deliver(res.fail(ResultHostUnreachable, "compute host socket"))
			return
		}
		if res.fd, err = relay.Detach(tc); err != nil {
			ss.deliver(res.fail(ResultHostUnreachable, "compute host socket"))
			return
		}
		ss.deliver(res)
		return
	}
	inner, outer, err := hostPair()
	if err != nil {
		secured.Close()
		ss.deliver(res.fail(ResultHostUnreachable, "socket pair"))
		return
	}
	res.fd = inner
	ss.deliver(res)
	bridge(secured, outer, s.cfg.WriteTimeout) // ends when the poller closes inner or the host ends TLS
}

// securityResult maps a security handshake error to its result and a fixed
// phrase for the log (never the peer's bytes).
func securityResult(err error) (Result, string) {
	if errors.Is(err, relay.ErrVeNCryptTLS) {
		return ResultVeNCryptFailed, tlsReason(err)
	}
	for _, e := range rfbErrors {
		if errors.Is(err, e) {
			return ResultRFBFailed, e.Error()
		}
	}
	var ne net.Error
	if (errors.As(err, &ne) && ne.Timeout()) || errors.Is(err, context.DeadlineExceeded) {
		return ResultRFBFailed, "RFB handshake with the compute host timed out"
	}
	return ResultRFBFailed, "RFB handshake with the compute host failed"
}

// rfbErrors are the RFB failures whose own text is the log's phrase.
var rfbErrors = []error{relay.ErrRFBVersion, relay.ErrRFBRefused, relay.ErrRFBNoScheme,
	relay.ErrVeNCrypt, relay.ErrRFBClosed, relay.ErrRFBAuthFailed}

// hostPair is a socket pair for a TLS bridge toward a compute host: the
// non-blocking fd the relay poller owns, and the bridge's net.Conn.
func hostPair() (int, net.Conn, error) {
	fds, err := pairFDs(unix.SOCK_NONBLOCK)
	if err != nil {
		return -1, nil, err
	}
	outer, err := fileConn(fds[1], "compute-host-tls")
	if err != nil {
		unix.Close(fds[0])
		return -1, nil, err
	}
	return fds[0], outer, nil
}

// greet sends the security proxy's first handshake message and starts
// collecting the client's answers. Loop; the host socket is started only
// once the client is through (takeRFB), so no host byte can overtake the
// proxy's messages. False means the write failed: gnet closed the client
// inside it.
func (ss *session) greet() bool {
	ss.rfbNeed = relay.ClientReplyLen
	_, err := ss.c.Write(ss.dataFrame(relay.GreetVersion))
	return err == nil
}

// takeRFB collects the client's answers from the front of p, sends the next
// handshake message after each, and returns the rest of p, which is the
// host's. A wrong answer ends the session with 1008. Loop.
func (ss *session) takeRFB(p []byte) ([]byte, gnet.Action) {
	for len(p) > 0 && ss.rfbNeed > 0 {
		off := relay.ClientReplyLen - ss.rfbNeed
		end := relay.ClientVersionLen // the version's bytes, then the choice's
		if off >= end {
			end = relay.ClientReplyLen
		}
		n := min(end-off, len(p))
		copy(ss.rfbReply[off:], p[:n])
		p, ss.rfbNeed = p[n:], ss.rfbNeed-n
		switch {
		case off+n < end:
			return p, gnet.None
		case end == relay.ClientVersionLen:
			if relay.CheckClientVersion(ss.rfbReply[:end]) != nil {
				return nil, ss.fail(EndRFBClient)
			}
			if _, err := ss.c.Write(ss.dataFrame(relay.GreetTypes)); err != nil {
				return nil, gnet.Close // closed inside the write
			}
		default:
			if relay.CheckClientChoice(ss.rfbReply[relay.ClientVersionLen]) != nil {
				return nil, ss.fail(EndRFBClient)
			}
			if _, err := ss.c.Write(ss.dataFrame(relay.GreetResult)); err != nil {
				return nil, gnet.Close // closed inside the write
			}
			ss.host.Start()
		}
	}
	return p, gnet.None
}

// tlsReason names what failed in TLS toward a compute host, in a fixed
// phrase (the certificate's details stay out of the log).
func tlsReason(err error) string {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &unknown):
		return "compute host certificate: unknown authority (not under --vencrypt-ca-certs)"
	case errors.As(err, &hostname):
		return "compute host certificate does not name the token's host"
	case errors.As(err, &invalid):
		return "compute host certificate invalid (expired, not yet valid or not for servers)"
	case relay.IsTLSAlert(err):
		return "compute host refused the TLS handshake (client certificate?)"
	case errors.Is(err, relay.ErrRFBClosed):
		return "compute host closed after TLS (client certificate refused?)"
	}
	return "TLS handshake with the compute host failed"
}
