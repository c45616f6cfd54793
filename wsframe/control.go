package wsframe

import (
	"encoding/binary"

	"github.com/gobwas/ws"
)

// MaxControlPayload is the longest control frame payload (RFC 6455 §5.5).
const MaxControlPayload = 125

// ValidCloseCode reports whether a peer may send code in a close frame
// (RFC 6455 §7.4.1 and §7.4.2, with the codes IANA registered since: 1012-1014).
// Below 1000, 1004-1006, 1015, 1016-2999 and 5000 and above are refused.
func ValidCloseCode(code ws.StatusCode) bool {
	switch {
	case code >= 1000 && code <= 1003:
		return true
	case code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// checkClose validates a close payload (RFC 6455 §5.5.1): empty, or a valid
// code followed by a UTF-8 reason.
func checkClose(p []byte) error {
	switch {
	case len(p) == 0:
		return nil
	case len(p) == 1:
		return ErrBadClosePayload
	case !ValidCloseCode(ws.StatusCode(binary.BigEndian.Uint16(p))):
		return ErrBadCloseCode
	case !validUTF8(p[2:]):
		return ErrInvalidUTF8
	}
	return nil
}

// ParseClose splits a validated close payload into its code and reason.
// An empty payload yields ws.StatusNoStatusRcvd (1005). reason is a slice of p.
func ParseClose(p []byte) (code ws.StatusCode, reason []byte) {
	if len(p) < 2 {
		return ws.StatusNoStatusRcvd, nil
	}
	return ws.StatusCode(binary.BigEndian.Uint16(p)), p[2:]
}

// AppendClose appends a server close frame with code and reason. The reason
// is cut to fit the 125-byte control payload; callers pass fixed ASCII
// phrases, never peer bytes.
func AppendClose(dst []byte, code ws.StatusCode, reason string) []byte {
	if len(reason) > MaxControlPayload-2 {
		reason = reason[:MaxControlPayload-2]
	}
	dst = AppendHeader(dst, ws.OpClose, 2+len(reason))
	dst = binary.BigEndian.AppendUint16(dst, uint16(code))
	return append(dst, reason...)
}

// AppendControl appends an unmasked ping or pong frame carrying payload,
// which must be at most MaxControlPayload bytes (a pong echoes a validated
// ping; a longer payload is a programming error and panics).
func AppendControl(dst []byte, op ws.OpCode, payload []byte) []byte {
	if len(payload) > MaxControlPayload {
		panic("wsframe: control payload over 125 bytes")
	}
	dst = AppendHeader(dst, op, len(payload))
	return append(dst, payload...)
}

// Precompiled server frames. They are shared: never modify them.
var (
	PingFrame = AppendControl(nil, ws.OpPing, nil)
	// closeFrames holds a close frame for each code the proxy sends.
	closeFrames = map[ws.StatusCode][]byte{}
)

func init() {
	for _, c := range []ws.StatusCode{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1011} {
		closeFrames[c] = AppendClose(nil, c, "")
	}
}

// CloseFrame returns the precompiled close frame for code (no reason), or a
// new one for a code the proxy does not usually send. Never modify it.
func CloseFrame(code ws.StatusCode) []byte {
	if f, ok := closeFrames[code]; ok {
		return f
	}
	return AppendClose(nil, code, "")
}
