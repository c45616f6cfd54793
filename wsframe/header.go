package wsframe

import (
	"encoding/binary"

	"github.com/gobwas/ws"
)

// MaxHeaderSize is the longest frame header: 2 bytes, 8 of extended length
// and 4 of mask key (RFC 6455 §5.2).
const MaxHeaderSize = ws.MaxHeaderSize

// MaxServerHeaderSize is the longest header of an unmasked (server) frame.
const MaxServerHeaderSize = ws.MaxHeaderSize - 4

// HeaderLen returns the length of a frame header (RFC 6455 §5.2) given its
// second byte: 2, plus 2 or 8 bytes of extended length, plus 4 of mask key.
func HeaderLen(b1 byte) int { return headerLen(b1) }

// headerLen returns the length of the header whose first two bytes are b0, b1.
func headerLen(b1 byte) int {
	n := 2
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	return n
}

// decodeHeader decodes a complete header b (len(b) == headerLen(b[1])) and
// checks the length encoding (RFC 6455 §5.2: minimal, top bit clear).
func decodeHeader(b []byte) (h ws.Header, err error) {
	h.Fin = b[0]&0x80 != 0
	h.Rsv = (b[0] >> 4) & 7
	h.OpCode = ws.OpCode(b[0] & 0x0f)
	h.Masked = b[1]&0x80 != 0
	n := 2
	switch l := b[1] & 0x7f; l {
	case 126:
		h.Length = int64(binary.BigEndian.Uint16(b[2:]))
		if h.Length < 126 {
			err = ErrBadLength
		}
		n = 4
	case 127:
		u := binary.BigEndian.Uint64(b[2:])
		if u>>63 != 0 || u <= 0xffff {
			err = ErrBadLength
		}
		h.Length = int64(u)
		n = 10
	default:
		h.Length = int64(l)
	}
	if h.Masked {
		copy(h.Mask[:], b[n:n+4])
	}
	return h, err
}

// PutHeader encodes h into dst, which must have room for MaxHeaderSize bytes,
// and returns the number of bytes written. The length is encoded minimally.
// It does not mask anything: a masked header carries h.Mask and the caller
// masks the payload (Unmask is its own inverse).
func PutHeader(dst []byte, h ws.Header) int {
	b0 := byte(h.OpCode&0x0f) | h.Rsv<<4
	if h.Fin {
		b0 |= 0x80
	}
	dst[0] = b0
	var m byte
	if h.Masked {
		m = 0x80
	}
	n := 2
	switch {
	case h.Length < 126:
		dst[1] = m | byte(h.Length)
	case h.Length <= 0xffff:
		dst[1] = m | 126
		binary.BigEndian.PutUint16(dst[2:], uint16(h.Length))
		n = 4
	default:
		dst[1] = m | 127
		binary.BigEndian.PutUint64(dst[2:], uint64(h.Length))
		n = 10
	}
	if h.Masked {
		n += copy(dst[n:], h.Mask[:])
	}
	return n
}

// AppendHeader appends the header of an unmasked, final server frame with
// opcode op and a payload of length bytes, and returns the extended slice.
// It does not allocate when dst has MaxServerHeaderSize bytes of capacity left.
func AppendHeader(dst []byte, op ws.OpCode, length int) []byte {
	var b [MaxHeaderSize]byte
	n := PutHeader(b[:], ws.Header{Fin: true, OpCode: op, Length: int64(length)})
	return append(dst, b[:n]...)
}

// HeaderSize returns the size of the header AppendHeader writes for length.
func HeaderSize(length int) int {
	switch {
	case length < 126:
		return 2
	case length <= 0xffff:
		return 4
	default:
		return 10
	}
}
