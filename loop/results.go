package loop

// Result is how a connection's handshake ended: the `result` label of
// consoleproxy_sessions_total (CONTRACT.md), counted once per connection,
// and the result field of its log line.
type Result string

// Results. "ok" is every connection that got 101; every other value is one
// refusal row of CONTRACT.md's status table, or a way a handshake died.
const (
	ResultOK                 Result = "ok"
	ResultBadRequest         Result = "bad_request"         // 400
	ResultUnsupportedVersion Result = "unsupported_version" // 426
	ResultHeadersTooLarge    Result = "headers_too_large"   // 431
	ResultNotWebSocket       Result = "not_websocket"       // 404: a plain GET without --web (with it, a page load: static.go)
	ResultAuthFailed         Result = "auth_failed"         // 403: no, unknown or expired token, wrong console type
	ResultTokenInUse         Result = "token_in_use"        // 403
	ResultOriginRefused      Result = "origin_refused"      // 403
	ResultOverCapacity       Result = "over_capacity"       // 503: --max-sessions
	ResultOverloaded         Result = "overloaded"          // 503: the worker queue is full
	ResultStoreUnavailable   Result = "store_unavailable"   // 503: the token store cannot answer
	ResultHostUnreachable    Result = "host_unreachable"    // 502
	ResultTargetRefused      Result = "target_refused"      // 502: outside --allowed-targets
	ResultBadAccessPath      Result = "bad_access_path"     // 502: internal_access_path is not a valid request target
	ResultConnectRefused     Result = "connect_refused"     // 502: the CONNECT answer was not 2xx (its status code is logged)
	ResultConnectMalformed   Result = "connect_malformed"   // 502: the CONNECT answer is not a well-formed HTTP/1.x head
	ResultConnectTooLarge    Result = "connect_too_large"   // 502: the CONNECT answer's head passed its byte cap
	ResultConnectClosed      Result = "connect_closed"      // 502: the host or proxy closed before the answer's end
	ResultConnectTimeout     Result = "connect_timeout"     // 502: no complete answer within --connect-timeout
	ResultConnectFailed      Result = "connect_failed"      // 502: the CONNECT exchange failed otherwise (a socket error)
	ResultRFBFailed          Result = "rfb_failed"          // 502: the compute host's RFB security handshake did not fit (version, no common scheme, VeNCrypt subtype, closed, timed out)
	ResultVeNCryptFailed     Result = "vencrypt_failed"     // 502: TLS with the compute host failed (certificate, name, handshake)
	ResultHandshakeTimeout   Result = "handshake_timeout"   // closed: no upgrade within --handshake-timeout
	ResultClientGone         Result = "client_gone"         // the client left before the upgrade
	ResultShuttingDown       Result = "shutting_down"       // 503 or closed: the proxy is draining
	ResultTLSFailed          Result = "tls_failed"          // closed: the TLS handshake failed (version, ciphers, client certificate)
	ResultPlainRefused       Result = "plain_refused"       // 400 or closed: a plaintext client under --ssl-only
	ResultPendingLimit       Result = "pending_limit"       // closed at accept: --max-pending connections are in the upgrade or TLS handshake
	ResultPerIPLimit         Result = "per_ip_limit"        // 429: --max-sessions-per-ip for the client's address
	ResultAuthRateLimited    Result = "auth_rate_limited"   // 429: --auth-failures-per-ip refused tokens from the address this minute
)

// allResults are pre-registered so every series exists from the start.
var allResults = []Result{
	ResultOK, ResultBadRequest, ResultUnsupportedVersion, ResultHeadersTooLarge, ResultNotWebSocket,
	ResultAuthFailed, ResultTokenInUse, ResultOriginRefused, ResultOverCapacity, ResultOverloaded,
	ResultStoreUnavailable, ResultHostUnreachable, ResultTargetRefused,
	ResultBadAccessPath, ResultConnectRefused, ResultConnectMalformed, ResultConnectTooLarge, ResultConnectClosed,
	ResultConnectTimeout, ResultConnectFailed, ResultRFBFailed, ResultVeNCryptFailed,
	ResultHandshakeTimeout, ResultClientGone, ResultShuttingDown,
	ResultTLSFailed, ResultPlainRefused, ResultPendingLimit, ResultPerIPLimit, ResultAuthRateLimited,
}

// status is the HTTP status sent for a refusal.
func (r Result) status() int {
	switch r {
	case ResultBadRequest, ResultPlainRefused:
		return 400
	case ResultUnsupportedVersion:
		return 426
	case ResultHeadersTooLarge:
		return 431
	case ResultPerIPLimit, ResultAuthRateLimited:
		return 429
	case ResultNotWebSocket:
		return 404
	case ResultAuthFailed, ResultTokenInUse, ResultOriginRefused:
		return 403
	case ResultOverCapacity, ResultOverloaded, ResultStoreUnavailable, ResultShuttingDown:
		return 503
	case ResultHostUnreachable, ResultTargetRefused, ResultBadAccessPath, ResultConnectRefused,
		ResultConnectMalformed, ResultConnectTooLarge, ResultConnectClosed, ResultConnectTimeout, ResultConnectFailed,
		ResultRFBFailed, ResultVeNCryptFailed:
		return 502
	}
	return 500
}

// End is why a relaying session ended: used for the close code, the log
// line and the metric label alike.
type End string

// Session ends and their close codes (CONTRACT.md).
const (
	EndClientClosed   End = "client_closed"        // the client sent close: echoed
	EndClientGone     End = "client_gone"          // the client's TCP connection ended
	EndHostClosed     End = "host_closed"          // 1000
	EndHostError      End = "host_error"           // 1011
	EndIdleTimeout    End = "idle_timeout"         // 1001
	EndPingTimeout    End = "ping_timeout"         // 1001: no answer to pings
	EndSessionExpired End = "session_expired"      // 1001: --enforce-session-timeout
	EndShutdown       End = "shutdown"             // 1001
	EndProtocolError  End = "protocol_error"       // 1002
	EndUnsupported    End = "unsupported_data"     // 1003
	EndInvalidUTF8    End = "invalid_utf8"         // 1007
	EndTooBig         End = "message_too_big"      // 1009
	EndClientStalled  End = "client_write_timeout" // closed: the client took no byte for --write-timeout while the proxy held bytes for it
	EndHostStalled    End = "host_write_timeout"   // 1011: the compute host took no byte for --write-timeout
	EndRFBClient      End = "rfb_client"           // 1008: the client did not answer the security proxy with RFB 3.8 and None
	EndRevoked        End = "revoked"              // 1008: the token was revoked (revoke.go)
	EndTakenOver      End = "taken_over"           // 1008: --token-reuse takeover: a newer session opened with the token
)

var allEnds = []End{EndClientClosed, EndClientGone, EndHostClosed, EndHostError, EndIdleTimeout,
	EndPingTimeout, EndSessionExpired, EndShutdown, EndProtocolError, EndUnsupported, EndInvalidUTF8,
	EndTooBig, EndClientStalled, EndHostStalled, EndRFBClient, EndAdmin, EndRevoked, EndTakenOver}

func (e End) code() uint16 {
	switch e {
	case EndHostClosed, EndClientClosed:
		return 1000
	case EndHostError, EndHostStalled:
		return 1011
	case EndProtocolError:
		return 1002
	case EndUnsupported:
		return 1003
	case EndInvalidUTF8:
		return 1007
	case EndTooBig:
		return 1009
	case EndRFBClient, EndAdmin, EndRevoked, EndTakenOver:
		return 1008
	}
	return 1001
}

// endFor maps a frame-parser close code to the session end.
func endFor(code uint16) End {
	switch code {
	case 1003:
		return EndUnsupported
	case 1007:
		return EndInvalidUTF8
	case 1009:
		return EndTooBig
	}
	return EndProtocolError
}
