//go:build linux

package loop

import (
	"errors"
	"sync"

	"github.com/panjf2000/gnet/v2"

	"github.com/consoleproxy/consoleproxy/loop/policy"
	"github.com/consoleproxy/consoleproxy/loop/web"
	"github.com/consoleproxy/consoleproxy/relay/tokens"
	"github.com/consoleproxy/consoleproxy/wsframe"
)

// handshake parses the upgrade request in place as bytes arrive and applies
// everything that needs no blocking: request rules, forwarding headers,
// Origin, the address's refused tokens, the token's presence, the
// per-address and total session caps. Then the blocking part goes to the
// worker pool. Runs on the loop.
func (ss *session) handshake() gnet.Action {
	c := ss.c
	buf, _ := c.Peek(-1)
	if t := ss.srv.cfg.TLS; t != nil && ss.tls == nil && len(buf) > 0 {
		if buf[0] == tlsRecordHandshake {
			return ss.startTLS()
		}
		if t.Only {
			return ss.refusePlain(buf[0])
		}
	}
	hs := ss.handshakeState()
	n, err := hs.reqp.Parse(buf, ss.srv.cfg.Request, &hs.req)
	if errors.Is(err, wsframe.ErrIncomplete) {
		return gnet.None
	}
	ss.leavePending() // the request is read: authorizing next, or refused and closing
	if err != nil {
		var he *wsframe.HTTPError
		if errors.As(err, &he) && he.Status == 431 {
			return ss.refuse(ResultHeadersTooLarge, he.Reason)
		}
		return ss.refuse(ResultBadRequest, reasonOf(err))
	}
	if !hs.req.IsUpgrade() {
		if site := ss.srv.web.Load(); site != nil {
			return ss.serveStatic(site)
		}
	}
	res, why := ss.admission()
	if res != ResultOK {
		return ss.refuse(res, why)
	}
	s := ss.srv
	if !ss.authAttempt() { // before any lookup
		return ss.refuse(ResultAuthRateLimited, "too many refused tokens from this address")
	}
	token, ok := ss.token()
	if !ok {
		return ss.refuse(ResultAuthFailed, "no token")
	}
	if s.draining.Load() {
		return ss.refuse(ResultShuttingDown, "draining")
	}
	h := tokens.HashToken(token)
	clear(token) // a decoded copy, or gnet's buffer about to be discarded
	hs.keyLen = copy(hs.key[:], hs.req.Key)
	hs.proto = wsframe.ChooseProtocol(&hs.req)
	ss.base64 = string(hs.proto) == "base64"
	if ss.base64 {
		ss.b64 = new(wsframe.Base64Decoder)
	}
	_, _ = c.Discard(n)
	hs.req = wsframe.Request{} // its slices pointed into the bytes just discarded
	if !ss.enterIP() {
		return ss.refuse(ResultPerIPLimit, "max sessions per address reached")
	}
	if !ss.admit() {
		ss.unadmit() // the per-address count
		return ss.refuse(ResultOverCapacity, "max sessions reached")
	}
	ss.phase.Store(int32(phaseAuthorizing))
	scheme, attempt := hs.originScheme, ss.handAuth() // authorize settles the attempt
	if s.lookupOnLoop {
		ss.authorize(h, scheme, attempt)
		return gnet.None
	}
	if !s.pool.submit(func() { ss.authorize(h, scheme, attempt) }) {
		ss.phase.Store(int32(phaseHandshake))
		ss.unadmit()
		s.limits.authSettle(attempt, ResultOverloaded)
		return ss.refuse(ResultOverloaded, "worker queue full")
	}
	return gnet.None
}

// serveStatic answers a plain GET or HEAD from the --web site (in memory:
// the loop never touches the disk) and closes; counted as a page load, not
// a session (static.go). Runs on the loop.
func (ss *session) serveStatic(site *web.Site) gnet.Action {
	req := &ss.hs.req
	head, body, err := site.Lookup(req.Method, req.Path())
	switch {
	case errors.Is(err, web.ErrMethod):
		return ss.staticAnswer(405)
	case errors.Is(err, web.ErrBadPath):
		return ss.staticAnswer(400)
	case err != nil:
		return ss.staticAnswer(404)
	}
	_, _ = ss.c.Writev([][]byte{head, body})
	return ss.staticAnswer(200)
}

// refusePlain answers a plaintext client under --ssl-only: 400 when its
// first byte can start an HTTP method, else the connection just closes.
func (ss *session) refusePlain(first byte) gnet.Action {
	if first >= 'A' && first <= 'Z' {
		return ss.refuse(ResultPlainRefused, "plaintext under ssl-only")
	}
	ss.count(ResultPlainRefused)
	return gnet.Close
}

// admission checks the request as a WebSocket upgrade and its Origin.
func (ss *session) admission() (Result, string) {
	req := &ss.hs.req
	if !req.IsUpgrade() {
		return ResultNotWebSocket, "not a websocket request"
	}
	if err := req.CheckUpgrade(); err != nil {
		var he *wsframe.HTTPError
		if errors.As(err, &he) && he.Status == 426 {
			return ResultUnsupportedVersion, he.Reason
		}
		return ResultBadRequest, reasonOf(err)
	}
	s := ss.srv
	secure, client, err := s.cfg.Trusted.ClientView(ss.peer, ss.secure,
		values(req, "X-Forwarded-Proto"), values(req, "X-Forwarded-For"), values(req, "Forwarded"))
	if err != nil {
		return ResultBadRequest, "conflicting forwarding headers"
	}
	ss.client = client
	if err := s.cfg.Origins.Check(req.Origin, req.HasOrigin, req.Host, secure); err != nil {
		return ResultOriginRefused, "origin refused"
	}
	ss.hs.originScheme = policy.OriginScheme(req.HasOrigin, secure)
	return ResultOK, ""
}

// token finds the client's token: the query's `token`, else the cookie.
func (ss *session) token() ([]byte, bool) {
	req := &ss.hs.req
	if t, ok := policy.QueryToken(req.Query()); ok {
		return t, true
	}
	return policy.CookieToken(values(req, "Cookie"))
}

// values collects a header's values (the handshake may allocate).
func values(req *wsframe.Request, name string) [][]byte {
	var out [][]byte
	req.Values(name, func(v []byte) { out = append(out, v) })
	return out
}

// refuse answers with the status for r and closes. Runs on the loop.
func (ss *session) refuse(r Result, why string) gnet.Action {
	// Counted and logged before the answer, so whoever reads it finds both.
	ss.count(r)
	ss.settleAuth(r)
	ss.srv.cfg.Logger.Info("session refused", "peer", ss.client.String(), "instance", ss.rec.instance,
		"result", string(r), "reason", why)
	_, _ = ss.c.Write(wsframe.AppendError(nil, r.status()))
	return gnet.Close
}

// reasonOf is the fixed phrase of a parser error (never request bytes).
func reasonOf(err error) string {
	var he *wsframe.HTTPError
	if errors.As(err, &he) {
		return he.Reason
	}
	return "malformed request"
}

// handshakeState is what only the handshake needs: the request parser, the
// parsed request (large: its header fields are inline) and the key for the
// 101. Pooled, so neither an idle session nor each new connection pays for
// it. Loop only.
type handshakeState struct {
	reqp wsframe.RequestParser
	req  wsframe.Request
	key  [32]byte // Sec-WebSocket-Key, copied out of the request
	// keyLen is the key's length in key.
	keyLen int
	// originScheme is the accepted Origin's scheme ("" without an Origin),
	// for Nova's access_url_base rule once the record is known.
	originScheme string
	// proto is the chosen subprotocol (a static slice), for the 101.
	proto []byte
	// resp holds the 101 while it is written (gnet copies what the socket
	// does not take).
	resp [256]byte
}

var handshakes = sync.Pool{New: func() any { return new(handshakeState) }}

// handshakeState returns the session's handshake state, taking one from the
// pool on first use. Loop only.
func (ss *session) handshakeState() *handshakeState {
	if ss.hs == nil {
		ss.hs = handshakes.Get().(*handshakeState)
	}
	return ss.hs
}

// releaseHandshake clears the handshake state and pools it. Loop only.
func (ss *session) releaseHandshake() {
	hs := ss.hs
	if hs == nil {
		return
	}
	ss.hs = nil
	hs.reqp.Reset()
	hs.req = wsframe.Request{}
	hs.key, hs.keyLen, hs.originScheme, hs.proto = [32]byte{}, 0, "", nil
	handshakes.Put(hs)
}
