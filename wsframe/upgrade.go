package wsframe

import (
	"bytes"
	"encoding/base64"
)

// The refusals CheckUpgrade reports (RFC 6455 §4.2.1). Fixed values: returning
// one does not allocate.
var (
	errUpgradeMethod  = badRequest("upgrade method not GET")
	errUpgradeToken   = badRequest("no websocket in Upgrade header")
	errConnection     = badRequest("no upgrade in Connection header")
	errMissingKey     = badRequest("missing Sec-WebSocket-Key header")
	errInvalidKey     = badRequest("invalid Sec-WebSocket-Key header")
	errMissingVersion = badRequest("missing Sec-WebSocket-Version header")
	// RFC 6455 §4.2.2: answer 426 with the versions the server supports.
	errWSVersion = &HTTPError{426, "unsupported WebSocket version"}
)

// keyEncoding decodes Sec-WebSocket-Key: standard, padded, and canonical
// (zero trailing bits).
var keyEncoding = base64.StdEncoding.Strict()

// IsUpgrade reports whether the request asks for a WebSocket upgrade at all:
// its Upgrade header lists the token "websocket". It tells a static-file GET
// from a broken upgrade.
func (r *Request) IsUpgrade() bool { return hasToken(r.Upgrade, "websocket") }

// CheckUpgrade reports whether r is a valid WebSocket opening handshake
// (RFC 6455 §4.2.1), returning a *HTTPError if not: 400, or 426 for a
// Sec-WebSocket-Version other than 13. Extensions are ignored (none is ever
// negotiated). It does not allocate.
func (r *Request) CheckUpgrade() error {
	switch {
	case string(r.Method) != "GET":
		return errUpgradeMethod
	case !r.IsUpgrade():
		return errUpgradeToken
	case !r.connectionUpgrade():
		return errConnection
	case r.Version == nil:
		return errMissingVersion
	case string(r.Version) != "13":
		return errWSVersion
	case r.Key == nil:
		return errMissingKey
	case !validKey(r.Key):
		return errInvalidKey
	}
	return nil
}

// connectionUpgrade reports whether any Connection header lists "upgrade".
func (r *Request) connectionUpgrade() bool {
	for _, h := range r.Headers {
		if equalFold(h.Name, "Connection") && hasToken(h.Value, "upgrade") {
			return true
		}
	}
	return false
}

// validKey reports whether key is base64 of exactly 16 bytes (RFC 6455 §4.1).
func validKey(key []byte) bool {
	var nonce [18]byte
	if len(key) != 24 {
		return false
	}
	n, err := keyEncoding.Decode(nonce[:], key)
	return err == nil && n == 16
}

// hasToken reports whether the comma-separated list v (RFC 9110 §5.6.1)
// holds token, compared case-insensitively.
func hasToken(v []byte, token string) bool {
	found := false
	eachElement(v, func(e []byte) bool {
		found = equalFold(e, token)
		return !found
	})
	return found
}

// eachElement calls fn for each non-empty element of the comma-separated
// list v, OWS trimmed, until fn returns false. It reports whether fn did.
func eachElement(v []byte, fn func(e []byte) bool) bool {
	for len(v) > 0 {
		e := v
		if i := bytes.IndexByte(v, ','); i >= 0 {
			e, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		// RFC 9110 §5.6.1: empty elements are accepted and ignored.
		if e = trimOWS(e); len(e) > 0 && !fn(e) {
			return false
		}
	}
	return true
}

// Protocols calls fn with each subprotocol offered in the
// Sec-WebSocket-Protocol headers (comma-separated, OWS trimmed), in order,
// until fn returns false. The slices are borrowed like all of r.
func (r *Request) Protocols(fn func(p []byte) bool) {
	for _, h := range r.Headers {
		if equalFold(h.Name, "Sec-WebSocket-Protocol") && !eachElement(h.Value, fn) {
			return
		}
	}
}

// The subprotocols the proxy speaks. Shared: never modify them.
var (
	ProtocolBinary = []byte("binary")
	ProtocolBase64 = []byte("base64")
)

// ChooseProtocol returns the subprotocol to answer: "binary" if offered, else
// "base64" if offered, else nil (binary frames, no Sec-WebSocket-Protocol
// header). Names compare case-sensitively (RFC 6455 §4.1). The result is
// ProtocolBinary or ProtocolBase64, never a slice of the request.
func ChooseProtocol(r *Request) []byte {
	var binary, b64 bool
	r.Protocols(func(p []byte) bool {
		switch string(p) {
		case "binary":
			binary = true
		case "base64":
			b64 = true
		}
		return !binary
	})
	switch {
	case binary:
		return ProtocolBinary
	case b64:
		return ProtocolBase64
	}
	return nil
}
