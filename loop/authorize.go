package loop

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/consoleproxy/consoleproxy/loop/policy"
	"github.com/consoleproxy/consoleproxy/relay"
	"github.com/consoleproxy/consoleproxy/relay/tokens"
	"github.com/consoleproxy/consoleproxy/wsframe"
)

// authResult is what a worker found out, delivered back to the loop.
type authResult struct {
	result  Result
	why     string // a fixed phrase for the log
	fd      int
	rec     tokens.Record
	release func()
	connect [][]byte // CONNECT requests still to be exchanged, in order (forward proxy, access path)
	first   []byte   // console bytes that came with the last CONNECT answer
}

// cleanup gives back what an unused result holds.
func (r *authResult) cleanup() {
	if r.fd >= 0 {
		_ = unix.Close(r.fd)
		r.fd = -1
	}
	if r.release != nil {
		r.release()
		r.release = nil
	}
}

// authorize runs on a worker: token lookup, policy, dial. Then the result
// goes back to the session's loop.
func (ss *session) authorize(h tokens.Hash) {
	s := ss.srv
	start := s.cfg.Now()
	res := s.lookupAndDial(h)
	if res.result != ResultOK || res.connect == nil {
		ss.deliver(res)
		return
	}
	ss.exchange(res, res.connect, start.Add(s.cfg.Dial.Timeout))
}

// exchange runs the CONNECT requests one after the other on a relay poller
// (no goroutine waits for an answer), then delivers the result. Bytes after
// an answer are console data only after the last one.
func (ss *session) exchange(res *authResult, steps [][]byte, deadline time.Time) {
	if len(steps) == 0 {
		ss.deliver(res)
		return
	}
	timeout := max(time.Until(deadline), 100*time.Millisecond)
	ss.srv.relay.Handshake(res.fd, steps[0], timeout, func(fd int, first []byte, err error) {
		res.fd = fd
		switch {
		case err != nil:
			res.fail(connectResult(err), connectReason(err))
		case len(steps) > 1 && len(first) > 0:
			res.fail(ResultConnectFailed, "bytes before the compute host's CONNECT answer")
		default:
			res.first = first
			ss.exchange(res, steps[1:], deadline)
			return
		}
		ss.deliver(res)
	})
}

// connectResult maps a CONNECT failure to its result (each a 502).
func connectResult(err error) Result {
	switch {
	case errors.Is(err, relay.ErrConnectRefused):
		return ResultConnectRefused
	case errors.Is(err, relay.ErrConnectTimeout):
		return ResultConnectTimeout
	}
	return ResultConnectFailed
}

// connectReason is the log's phrase: the status code of a refusal (never the
// body, never the path).
func connectReason(err error) string {
	if errors.Is(err, relay.ErrConnectRefused) {
		return err.Error()
	}
	for _, e := range []error{relay.ErrConnectTimeout, relay.ErrConnectTooLarge, relay.ErrConnectClosed, relay.ErrConnectMalformed} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	return "CONNECT failed"
}

// deliver hands the worker's answer to the session's loop.
func (ss *session) deliver(res *authResult) {
	err := ss.c.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		ss.authorized(res)
		return nil
	}))
	if err != nil {
		res.cleanup() // the engine is shutting down
	}
}

// lookupAndDial is the blocking part of a handshake. The reuse guard is
// taken before dialing: a refused client never causes a connection to a
// compute host.
func (s *Server) lookupAndDial(h tokens.Hash) *authResult {
	res := &authResult{result: ResultOK, fd: -1}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.HandshakeTimeout)
	defer cancel()
	rec, err := s.cfg.Store.Lookup(ctx, h)
	res.rec = rec // for the log's instance field
	switch {
	case errors.Is(err, tokens.ErrInstanceGone):
		return res.fail(ResultAuthFailed, "instance deleted or missing")
	case errors.Is(err, tokens.ErrNotFound):
		return res.fail(ResultAuthFailed, "unknown token")
	case errors.Is(err, tokens.ErrExpired):
		return res.fail(ResultAuthFailed, "expired token")
	case err != nil:
		return res.fail(ResultStoreUnavailable, "token store unavailable")
	case rec.Expires <= s.cfg.Now().Unix():
		return res.fail(ResultAuthFailed, "expired token")
	case rec.ConsoleType != s.cfg.ConsoleType:
		return res.fail(ResultAuthFailed, "wrong console type")
	case rec.InternalAccessPath != nil && !relay.ValidAccessPath(*rec.InternalAccessPath):
		return res.fail(ResultBadAccessPath, "internal_access_path is not a valid request target")
	}
	res.rec = rec
	release, err := s.cfg.Reuse.Acquire(policy.Key(h), time.Unix(rec.Expires, 0))
	if err != nil {
		return res.fail(ResultTokenInUse, "token in use")
	}
	res.release = release
	conn, err := s.dial(ctx, rec, res)
	if errors.Is(err, relay.ErrTargetRefused) {
		return res.fail(ResultTargetRefused, "compute host outside allowed targets")
	}
	if err != nil {
		return res.fail(ResultHostUnreachable, "compute host unreachable")
	}
	if res.fd, err = relay.Detach(conn); err != nil {
		return res.fail(ResultHostUnreachable, "compute host socket")
	}
	if p := rec.InternalAccessPath; p != nil {
		res.connect = append(res.connect, relay.AppendConnect(nil, *p, rec.Host, rec.Port))
	}
	return res
}

// dial connects to the compute host, or to --compute-proxy with the
// authority-form CONNECT queued first.
func (s *Server) dial(ctx context.Context, rec tokens.Record, res *authResult) (*net.TCPConn, error) {
	p := s.cfg.Dial.Proxy
	if p == nil {
		return relay.Dial(ctx, rec.Host, rec.Port, s.cfg.Dial)
	}
	conn, target, err := relay.DialProxy(ctx, rec.Host, rec.Port, s.cfg.Dial)
	if err == nil {
		res.connect = append(res.connect, p.AppendProxyConnect(nil, target))
	}
	return conn, err
}

func (r *authResult) fail(res Result, why string) *authResult {
	r.cleanup()
	r.result, r.why = res, why
	return r
}

// authorized runs on the loop with the worker's answer: 101 and relaying,
// or the refusal.
func (ss *session) authorized(res *authResult) {
	if phase(ss.phase.Load()) != phaseAuthorizing {
		res.cleanup() // the client left meanwhile
		return
	}
	s := ss.srv
	if res.result != ResultOK {
		ss.unadmit()
		ss.rec = res.rec
		ss.phase.Store(int32(phaseHandshake))
		ss.refuse(res.result, res.why)
		_ = ss.c.Close()
		return
	}
	ss.rec, ss.release = res.rec, res.release
	if s.cfg.EnforceSessionTimeout {
		ss.expires.Store(res.rec.Expires)
	}
	_, _ = ss.c.Write(wsframe.AppendSwitching(nil, ss.key[:ss.keyLen], ss.proto))
	ss.parser.Reset(wsframe.Config{
		MaxFrameSize: s.cfg.MaxFrameSize, MaxMessageSize: s.cfg.MaxMessageSize,
		RefuseText: !ss.base64, RefuseBinary: ss.base64,
	})
	now := s.cfg.Now()
	ss.lastData.Store(now.UnixNano())
	ss.lastPing.Store(now.UnixNano())
	ss.count(ResultOK)
	s.metrics.active.Add(1)
	s.metrics.handshake.Update(now.Sub(ss.accepted).Seconds())
	if len(res.first) > 0 {
		ss.sendFirst(res.first) // before any host data: gnet writes in order
	}
	ss.host = s.relay.Attach(res.fd, ss)
	ss.phase.Store(int32(phaseRelaying))
	ss.host.Start()
	if ss.c.InboundBuffered() > 0 {
		_ = ss.c.Wake(nil) // frames that arrived before the 101
	}
}
