package wsframe

import "github.com/gobwas/ws"

// ProtocolError is a violation by the peer that ends the session with a close
// frame carrying Code. Reason is a fixed phrase for logs and for the close
// frame; it never contains bytes from the peer.
type ProtocolError struct {
	Code   ws.StatusCode
	Reason string
}

func (e *ProtocolError) Error() string { return e.Reason }

// The violations the frame parser reports. Each is a fixed value, so returning
// one does not allocate; compare with errors.Is or ==.
var (
	// RFC 6455 §5.2: RSV1-3 MUST be 0 unless an extension is negotiated (none is).
	ErrReservedBits = &ProtocolError{ws.StatusProtocolError, "reserved bits set"}
	// RFC 6455 §5.2: opcodes 0x3-0x7 and 0xB-0xF are reserved.
	ErrReservedOpcode = &ProtocolError{ws.StatusProtocolError, "reserved opcode"}
	// RFC 6455 §5.1: a server MUST close the connection on an unmasked frame.
	ErrUnmasked = &ProtocolError{ws.StatusProtocolError, "unmasked client frame"}
	// RFC 6455 §5.1: a client MUST close the connection on a masked frame.
	ErrMasked = &ProtocolError{ws.StatusProtocolError, "masked server frame"}
	// RFC 6455 §5.5: control frames carry at most 125 bytes.
	ErrControlTooLong = &ProtocolError{ws.StatusProtocolError, "control frame over 125 bytes"}
	// RFC 6455 §5.5: control frames MUST NOT be fragmented.
	ErrControlFragmented = &ProtocolError{ws.StatusProtocolError, "fragmented control frame"}
	// RFC 6455 §5.4: a continuation frame outside a fragmented message.
	ErrUnexpectedContinuation = &ProtocolError{ws.StatusProtocolError, "unexpected continuation frame"}
	// RFC 6455 §5.4: a new data frame inside a fragmented message.
	ErrExpectedContinuation = &ProtocolError{ws.StatusProtocolError, "expected continuation frame"}
	// RFC 6455 §5.2: the most significant bit of a 64-bit length MUST be 0,
	// and the minimal number of bytes MUST be used to encode the length.
	ErrBadLength = &ProtocolError{ws.StatusProtocolError, "malformed payload length"}
	// RFC 6455 §5.5.1: a close payload is empty or a 2-byte code plus reason.
	ErrBadClosePayload = &ProtocolError{ws.StatusProtocolError, "malformed close payload"}
	// RFC 6455 §7.4: a close code the peer may not send.
	ErrBadCloseCode = &ProtocolError{ws.StatusProtocolError, "invalid close code"}
	// RFC 6455 §1.4/§5.5.1: after a close frame the peer sends nothing.
	ErrAfterClose = &ProtocolError{ws.StatusProtocolError, "frame after close"}
	// RFC 6455 §8.1: text (and a close reason) MUST be valid UTF-8.
	ErrInvalidUTF8 = &ProtocolError{ws.StatusInvalidFramePayloadData, "invalid utf-8"}
	// A text frame on a session that carries binary only, or the reverse.
	ErrUnsupportedData = &ProtocolError{ws.StatusUnsupportedData, "unsupported data type"}
	// Config.MaxFrameSize exceeded.
	ErrFrameTooBig = &ProtocolError{ws.StatusMessageTooBig, "frame too big"}
	// Config.MaxMessageSize exceeded.
	ErrMessageTooBig = &ProtocolError{ws.StatusMessageTooBig, "message too big"}
)
