//go:build linux

package loop

import (
	"context"
	"errors"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/consoleproxy/consoleproxy/loop/policy"
	"github.com/consoleproxy/consoleproxy/relay"
	"github.com/consoleproxy/consoleproxy/relay/reuse"
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
	target  relay.Target     // the compute host to open (relay.Open), checked
	first   []byte           // console bytes that came with the last CONNECT answer
	secured bool             // the security proxy spoke for the client: greet it (security.go)
	hostTLS *relay.TLSClient // VeNCrypt's TLS toward the host, for the poller (relay.AttachTLS)
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

// authorize runs on a worker: token lookup, policy, reuse guard; a refused
// token keeps its attempt counted against --auth-failures-per-ip. Then
// relay.Open resolves the host here and runs the rest on a relay poller
// (open), and the result goes back to the session's loop; the worker never
// waits for a SYN's answer.
//
// With a store and a guard that never block (Server.lookupOnLoop) it runs
// on the session's loop instead, no worker woken: a worker then takes only
// a DNS lookup (openOnWorker), and the connect starts on the loop's own
// poller at once (relay.Target.OnDriver). Either way the result reaches the
// session on its loop, never inside the handshake's own call: in that
// poller's Poll when the connect completes there (open), else through the
// loop's task queue (deliver).
func (ss *session) authorize(h tokens.Hash, originScheme string, attempt authTicket) {
	k := reuse.Key(h)
	ss.tokenKey.Store(&k) // before the lookup: a revocation from here on finds the session
	res := ss.srv.lookupAndGuard(h, originScheme, ss.endByGuard)
	if e := ss.guardEnd.Load(); e != nil && res.result == ResultOK {
		res.fail(guardRefusal(*e)) // revoked or taken over meanwhile: no connect
	}
	ss.srv.limits.authSettle(attempt, res.result) // here: a client that left meanwhile still counts
	if res.result != ResultOK {
		ss.deliver(res)
		return
	}
	res.target.Poller = ss.pollerIndex() // the connect completes on this session's loop, and its socket stays there
	if ss.srv.lookupOnLoop && relay.ResolveBlocks(res.target.Host, res.target.Dial) {
		ss.openOnWorker(res)
		return
	}
	res.target.OnDriver = ss.srv.lookupOnLoop // here on the loop that drives the poller: the connect starts at once
	ss.open(res)
}

// openOnWorker runs open on a worker: the session's loop looked the token
// up, and the host's name (or the forward proxy's) needs DNS. Loop.
func (ss *session) openOnWorker(res *authResult) {
	if !ss.srv.pool.submit(func() { ss.open(res) }) {
		ss.deliver(res.fail(ResultOverloaded, "worker queue full"))
	}
}

// open opens the compute host's socket with relay.Open (the DNS lookup on
// this worker; the connect, the CONNECTs, and with the security proxy the
// host's greeting and the RFB security handshake without a goroutine
// waiting), then delivers the result to the session's loop. The done
// callback runs on a poller or a security handshake goroutine and must not
// block. When it runs in the poll of the session's own loop (o.Polled), the
// result is taken there at once, no task queued.
func (ss *session) open(res *authResult) {
	err := ss.srv.relay.Open(context.Background(), res.target, func(o relay.Opened, err error) {
		res.fd, res.first, res.hostTLS, res.secured = o.Fd, o.First, o.TLS, o.Secured
		if err != nil {
			res.fail(openResult(err))
		}
		if o.Polled {
			ss.authorized(res)
			return
		}
		ss.deliver(res)
	})
	if err != nil {
		ss.deliver(res.fail(openResult(err)))
	}
}

// openResult maps a relay.Open failure to its result and a fixed phrase for
// the log, naming the step's peer: the forward proxy or the compute host.
func openResult(err error) (Result, string) {
	var oe *relay.OpenError
	if !errors.As(err, &oe) {
		return ResultHostUnreachable, "compute host unreachable"
	}
	switch oe.Step {
	case relay.StepResolve:
		return resolveResult(oe.Err)
	case relay.StepGreeting:
		return ResultHostUnreachable, "compute host socket"
	case relay.StepSecurity:
		return securityResult(oe.Err)
	}
	who := "compute host"
	if oe.Proxy {
		who = "forward proxy"
	}
	return connectResult(err), who + ": " + connectReason(err)
}

// resolveResult is the refusal of a host whose name is not allowed or does
// not resolve (relay.StepResolve).
func resolveResult(err error) (Result, string) {
	switch {
	case errors.Is(err, relay.ErrTargetRefused):
		return ResultTargetRefused, "compute host outside allowed targets"
	case errors.Is(err, relay.ErrBadHost), errors.Is(err, relay.ErrBadAccessPath):
		return badRecord(err)
	}
	return ResultHostUnreachable, "compute host unreachable"
}

// connectResults maps CONNECT failures to their results (each a 502).
var connectResults = []struct {
	err error
	res Result
}{
	{relay.ErrConnectRefused, ResultConnectRefused},
	{relay.ErrConnectMalformed, ResultConnectMalformed},
	{relay.ErrConnectTooLarge, ResultConnectTooLarge},
	{relay.ErrConnectClosed, ResultConnectClosed},
	{relay.ErrConnectTimeout, ResultConnectTimeout},
}

func connectResult(err error) Result {
	if errors.Is(err, relay.ErrUnreachable) {
		return ResultHostUnreachable // the connect itself, on the poller
	}
	for _, m := range connectResults {
		if errors.Is(err, m.err) {
			return m.res
		}
	}
	return ResultConnectFailed
}

// connectReason is the log's phrase: a fixed text, with the status code of
// a refusal ("…: 403"); never the answer's bytes, never the path.
func connectReason(err error) string {
	if errors.Is(err, relay.ErrConnectRefused) {
		return err.Error()
	}
	if errors.Is(err, relay.ErrUnreachable) {
		return relay.ErrUnreachable.Error()
	}
	for _, m := range connectResults {
		if errors.Is(err, m.err) {
			return m.err.Error()
		}
	}
	return "CONNECT failed"
}

// deliver hands the worker's answer to the session's loop.
func (ss *session) deliver(res *authResult) {
	err := ss.raw.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		ss.authorized(res)
		return nil
	}))
	if err != nil {
		res.cleanup() // the engine is shutting down
	}
}

// lookupAndGuard is the blocking part of a handshake before the compute
// host's DNS (open). The reuse guard is taken before any connect: a refused client never causes a connection to a
// compute host. originScheme is the accepted Origin's scheme, "" without
// an Origin.
// end is how the reuse guard ends the session (revoke.go).
func (s *Server) lookupAndGuard(h tokens.Hash, originScheme string, end func(reuse.Reason)) *authResult {
	res := &authResult{result: ResultOK, fd: -1}
	// The deadline's context and timer are made only for a store or a
	// resolve that may block (about 1 KiB of garbage a handshake otherwise).
	ctx := context.Background()
	if !s.storeQuick {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.HandshakeTimeout)
		defer cancel()
	}
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
	case policy.CheckAccessURLScheme(rec.AccessURLBase, originScheme) != nil:
		return res.fail(ResultOriginRefused, "origin scheme does not fit access_url_base")
	}
	res.rec = rec
	res.target = relay.Target{Host: rec.Host, Port: rec.Port, AccessPath: rec.InternalAccessPath,
		Dial: s.cfg.Dial, Security: s.hostSecurity()}
	// Checked before any dial: a record that could inject bytes never
	// causes a connection.
	if err := res.target.Check(); err != nil {
		return res.fail(badRecord(err))
	}
	release, err := s.cfg.Reuse.Acquire(reuse.Key(h), time.Unix(rec.Expires, 0), end)
	switch {
	case errors.Is(err, reuse.ErrTokenInUse):
		return res.fail(ResultTokenInUse, "token in use")
	case errors.Is(err, reuse.ErrRevoked):
		return res.fail(ResultAuthFailed, "token revoked")
	case err != nil: // a fleet guard that cannot reach its store: deny, 503
		return res.fail(ResultStoreUnavailable, "reuse store unavailable")
	}
	res.release = release
	res.target.Deadline = time.Now().Add(s.connectTimeout()) // DNS, connects and CONNECTs: open
	return res
}

// badRecord is the refusal of a record whose CONNECT request cannot be
// written safely (the log never names the value).
func badRecord(err error) (Result, string) {
	if errors.Is(err, relay.ErrBadHost) {
		return ResultHostUnreachable, "compute host is not an IP address or DNS name"
	}
	return ResultBadAccessPath, "internal_access_path is not a valid request target"
}

// connectTimeout bounds DNS, connects and CONNECT answers (--connect-timeout); with
// none configured, the client's handshake timeout bounds them.
func (s *Server) connectTimeout() time.Duration {
	if s.cfg.Dial.Timeout > 0 {
		return s.cfg.Dial.Timeout
	}
	return s.cfg.HandshakeTimeout
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
	if e := ss.guardEnd.Load(); e != nil && res.result == ResultOK {
		res.fail(guardRefusal(*e)) // revoked or taken over meanwhile
	}
	if res.result != ResultOK {
		ss.releaseHandshake()
		ss.unadmit()
		ss.rec = recordOf(res.rec)
		ss.phase.Store(int32(phaseHandshake))
		ss.refuse(res.result, res.why)
		_ = ss.c.Close()
		return
	}
	hs := ss.hs
	if _, err := ss.c.Write(wsframe.AppendSwitching(hs.resp[:0], hs.key[:hs.keyLen], hs.proto)); err != nil {
		res.cleanup() // gnet closed the client inside the write (OnClose ran and released hs)
		return
	}
	ss.releaseHandshake()
	ss.rec, ss.release = recordOf(res.rec), res.release
	if s.cfg.EnforceSessionTimeout {
		ss.expires.Store(res.rec.Expires)
	}
	ss.parser.Reset(wsframe.Config{
		MaxFrameSize: s.cfg.MaxFrameSize, MaxMessageSize: s.cfg.MaxMessageSize,
		RefuseText: !ss.base64, RefuseBinary: ss.base64,
	})
	now := s.cfg.Now()
	ss.lastData.Store(now.UnixNano())
	ss.lastPing.Store(now.UnixNano())
	ss.count(ResultOK)
	s.metrics.active.Add(1)
	s.metrics.handshake.Update(time.Duration(now.UnixNano() - ss.accepted).Seconds())
	poller := res.target.Poller // this loop's (authorize): the host's data arrives here
	if res.hostTLS != nil {
		ss.host = s.relay.AttachTLS(res.fd, res.hostTLS, ss, poller)
	} else {
		ss.host = s.relay.Attach(res.fd, ss, poller)
	}
	ss.phase.Store(int32(phaseRelaying))
	// From here the session is relaying: if a write below fails, OnClose
	// ran inside it and finishRelaying closed the host and released the
	// token, so nothing more is done.
	if len(res.first) > 0 && !ss.sendFirst(res.first) { // before any host data: gnet writes in order
		return
	}
	if res.secured {
		if !ss.greet() { // the client's RFB handshake; takeRFB starts the host
			return
		}
	} else {
		ss.host.StartOnDriver()
	}
	if ss.c.InboundBuffered() > 0 || ss.c.ReadPaused() {
		_ = ss.c.Wake(nil) // frames that arrived before the 101; resumes reading
	}
}
