package tlsrec

import (
	"bytes"
	"crypto/tls"
	"reflect"
	"unsafe"
)

// crypto/tls keeps the buffers it read the handshake into for the life of
// the connection: rawInput grown to the ClientHello record and hand to the
// ClientHello message, about 3.5 KiB with a post-quantum key share, twice
// what the session's keys and state take. Nothing outside the package can
// release them, so Trim does, by the fields' offsets: found at start-up
// by name and type, and only while they are empty (no record or message
// half read, no plaintext waiting in input, which points into rawInput).
// If a Go release renames or retypes them, trimming is off and only memory
// is lost (TestTrim fails to say so).

var tlsBufs = func() (o struct{ raw, input, hand uintptr }, ok bool) {
	t := reflect.TypeOf(tls.Conn{})
	for _, f := range []struct {
		name string
		typ  reflect.Type
		off  *uintptr
	}{
		{"rawInput", reflect.TypeOf(bytes.Buffer{}), &o.raw},
		{"input", reflect.TypeOf(bytes.Reader{}), &o.input},
		{"hand", reflect.TypeOf(bytes.Buffer{}), &o.hand},
	} {
		sf, found := t.FieldByName(f.name)
		if !found || sf.Type != f.typ {
			return o, false
		}
		*f.off = sf.Offset
	}
	return o, true
}

var tlsBufOffsets, trimOK = tlsBufs()

// TrimOK reports whether Trim works in this Go release.
func TrimOK() bool { return trimOK }

// Trim lets go of tc's read buffers if they hold nothing and together
// exceed keep bytes. Only on the goroutine that owns tc's reads (the loop
// or the poller, after the handshake), never during a Read.
func Trim(tc *tls.Conn, keep int) bool {
	if !trimOK {
		return false
	}
	p := unsafe.Pointer(tc)
	raw := (*bytes.Buffer)(unsafe.Add(p, tlsBufOffsets.raw))
	input := (*bytes.Reader)(unsafe.Add(p, tlsBufOffsets.input))
	hand := (*bytes.Buffer)(unsafe.Add(p, tlsBufOffsets.hand))
	if raw.Len() != 0 || input.Len() != 0 || hand.Len() != 0 || raw.Cap()+hand.Cap() <= keep {
		return false
	}
	*raw, *input, *hand = bytes.Buffer{}, bytes.Reader{}, bytes.Buffer{}
	return true
}

// Buffered is how many bytes tc holds that it has read from its transport
// and not yet returned: whole or partial records not yet decrypted, and
// the rest of the record being read (-1 if this Go release's fields are
// not known). Only on the goroutine that owns tc's reads, or after it.
func Buffered(tc *tls.Conn) int {
	if !trimOK {
		return -1
	}
	p := unsafe.Pointer(tc)
	raw := (*bytes.Buffer)(unsafe.Add(p, tlsBufOffsets.raw))
	input := (*bytes.Reader)(unsafe.Add(p, tlsBufOffsets.input))
	return raw.Len() + input.Len()
}
