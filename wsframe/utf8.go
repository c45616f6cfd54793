package wsframe

import "encoding/binary"

// utf8Check validates UTF-8 incrementally: a sequence may be split across
// pieces, frames and fragments (RFC 6455 §8.1 checks the whole message). It
// fails at the first byte that cannot start or continue a valid sequence, so a
// bad message is refused before its end arrives. The zero value is ready.
type utf8Check struct {
	need   uint8 // continuation bytes still expected
	lo, hi byte  // the range allowed for the next continuation byte
}

// write checks p, which is not retained; false means invalid.
func (s *utf8Check) write(p []byte) bool {
	i := 0
	for i < len(p) {
		if s.need == 0 {
			for i+8 <= len(p) && binary.LittleEndian.Uint64(p[i:])&0x8080808080808080 == 0 {
				i += 8
			}
			if i == len(p) {
				return true
			}
			c := p[i]
			i++
			if c >= 0x80 && !s.start(c) {
				return false
			}
			continue
		}
		c := p[i]
		i++
		if c < s.lo || c > s.hi {
			return false
		}
		s.need--
		s.lo, s.hi = 0x80, 0xBF
	}
	return true
}

// start sets up the state for the lead byte c >= 0x80 (Unicode 15 Table 3-7:
// no overlongs, no surrogates, nothing past U+10FFFF).
func (s *utf8Check) start(c byte) bool {
	s.lo, s.hi = 0x80, 0xBF
	switch {
	case c < 0xC2:
		return false
	case c < 0xE0:
		s.need = 1
	case c == 0xE0:
		s.need, s.lo = 2, 0xA0
	case c == 0xED:
		s.need, s.hi = 2, 0x9F
	case c < 0xF0:
		s.need = 2
	case c == 0xF0:
		s.need, s.lo = 3, 0x90
	case c < 0xF4:
		s.need = 3
	case c == 0xF4:
		s.need, s.hi = 3, 0x8F
	default:
		return false
	}
	return true
}

// complete reports whether no sequence is left unfinished.
func (s *utf8Check) complete() bool { return s.need == 0 }

// validUTF8 checks a whole string of bytes.
func validUTF8(p []byte) bool {
	var s utf8Check
	return s.write(p) && s.complete()
}
