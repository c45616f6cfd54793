package wsframe

import (
	"bytes"
	"encoding/base64"

	"github.com/gobwas/ws"
)

// ErrInvalidBase64 is a message of the "base64" subprotocol that is not
// standard padded base64 (RFC 4648 §4): the payload does not fit the agreed
// encoding, so the session closes with 1007.
var ErrInvalidBase64 = &ProtocolError{ws.StatusInvalidFramePayloadData, "invalid base64"}

// messageEncoding is standard, padded and canonical (zero trailing bits).
var messageEncoding = base64.StdEncoding.Strict()

// Base64EncodedLen returns the length of the base64 encoding of n bytes.
func Base64EncodedLen(n int) int { return base64.StdEncoding.EncodedLen(n) }

// AppendBase64 appends the standard padded base64 encoding of src to dst and
// returns it: each host chunk becomes one self-contained text message. src is
// not retained. It does not allocate when dst has room for
// Base64EncodedLen(len(src)) more bytes.
func AppendBase64(dst, src []byte) []byte {
	n := Base64EncodedLen(len(src))
	dst = grow(dst, n)
	base64.StdEncoding.Encode(dst[len(dst):len(dst)+n], src)
	return dst[:len(dst)+n]
}

// Base64Decoder decodes one message of standard padded base64 that arrives in
// pieces cut anywhere (frames, reads). It keeps up to 3 pending characters.
// Strict: whitespace and line breaks are errors, padding may only end the
// message, and trailing bits must be zero. Its zero value is ready to use.
type Base64Decoder struct {
	pend   [4]byte
	n      int   // pending characters in pend
	padded bool  // a quantum with padding was decoded: the message must end
	err    error // sticky until End
}

// Decode appends to dst the bytes decoded from src, a piece of the message,
// and returns it. src is not retained. On error (ErrInvalidBase64, returned
// again until End) dst holds the bytes of every whole quantum before the bad
// one, however the message was cut. It does not allocate when dst has room
// for len(src)/4*3+3 more bytes.
func (d *Base64Decoder) Decode(dst, src []byte) ([]byte, error) {
	if d.err != nil {
		return dst, d.err
	}
	bad := len(src)
	if i := bytes.IndexByte(src, '\n'); i >= 0 {
		bad = i
	}
	if i := bytes.IndexByte(src[:bad], '\r'); i >= 0 {
		bad = i // the standard decoder would skip CR and LF: stop before them
	}
	dst, d.err = d.decode(dst, src[:bad])
	if d.err == nil && bad < len(src) {
		d.err = ErrInvalidBase64
	}
	return dst, d.err
}

// decode handles src free of CR and LF.
func (d *Base64Decoder) decode(dst, src []byte) ([]byte, error) {
	if len(src) > 0 && d.padded {
		return dst, ErrInvalidBase64
	}
	if d.n > 0 {
		k := copy(d.pend[d.n:], src)
		d.n, src = d.n+k, src[k:]
		if d.n < 4 {
			return dst, nil
		}
		d.n = 0
		var err error
		if dst, err = d.quanta(dst, d.pend[:]); err != nil || (len(src) > 0 && d.padded) {
			return dst, ErrInvalidBase64
		}
	}
	whole := len(src) &^ 3
	dst, err := d.quanta(dst, src[:whole])
	if err != nil || (whole < len(src) && d.padded) {
		return dst, ErrInvalidBase64
	}
	d.n = copy(d.pend[:], src[whole:])
	return dst, nil
}

// quanta decodes src, a whole number of 4-character quanta, onto dst.
func (d *Base64Decoder) quanta(dst, src []byte) ([]byte, error) {
	if len(src) == 0 {
		return dst, nil
	}
	room := len(src) / 4 * 3
	dst = grow(dst, room)
	n, err := messageEncoding.Decode(dst[len(dst):len(dst)+room], src)
	d.padded = src[len(src)-1] == '='
	return dst[:len(dst)+n], err
}

// End is called at the end of a message. It returns ErrInvalidBase64 if the
// message was invalid or ended inside a quantum, and resets d for the next
// message.
func (d *Base64Decoder) End() error {
	err := d.err
	if err == nil && d.n != 0 {
		err = ErrInvalidBase64
	}
	*d = Base64Decoder{}
	return err
}
