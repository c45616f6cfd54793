package bench

import (
	"encoding/binary"
	"fmt"
)

// The hostile scenarios that send data to a compute host send a known
// pattern, so that the host (the built-in backend) can tell any byte no
// client sent. A session's payload stream is a run of 8-byte records,
// record k being its id (uint32, little endian) then k (uint32): the first
// four bytes a host reads name the session, and every later byte is fixed.
// Still-masked bytes, a stretch relayed twice or out of order, or bytes of
// another session break the run at the first wrong byte. A stream that ends
// early (the proxy dropped the rest when the client reset) is a prefix, not
// corruption.
const recordLen = 8

// patternByte is byte off of session id's stream.
func patternByte(id uint32, off int64) byte {
	w := off % recordLen
	if w < 4 {
		return byte(id >> (8 * w))
	}
	return byte(uint32(off/recordLen) >> (8 * (w - 4)))
}

// appendPattern appends bytes [off, off+n) of session id's stream to dst.
func appendPattern(dst []byte, id uint32, off int64, n int) []byte {
	for i := range int64(n) {
		dst = append(dst, patternByte(id, off+i))
	}
	return dst
}

// fillPattern writes bytes [off, off+len(p)) of session id's stream into p.
func fillPattern(p []byte, id uint32, off int64) {
	var rec [recordLen]byte
	binary.LittleEndian.PutUint32(rec[:4], id)
	i := 0
	for i < len(p) {
		o := off + int64(i)
		w := int(o % recordLen)
		if w == 0 && len(p)-i >= recordLen {
			binary.LittleEndian.PutUint32(rec[4:], uint32(o/recordLen))
			copy(p[i:], rec[:])
			i += recordLen
			continue
		}
		p[i] = patternByte(id, o)
		i++
	}
}

// streamCheck verifies one host connection's bytes against the pattern.
// Its zero value is ready; it is used by one goroutine.
type streamCheck struct {
	n      int64   // bytes checked
	id     uint32  // from the first four bytes
	idBuf  [4]byte // those bytes until all four arrived
	bad    bool
	detail string // the first wrong byte, when bad
}

// maxSessionID bounds the ids a host accepts: the harness numbers sessions
// from 1 and never issues this many in one run.
const maxSessionID = 1 << 24

// feed checks p, the next bytes the host read; false once the stream is
// corrupt (further input is ignored).
func (c *streamCheck) feed(p []byte) bool {
	if c.bad {
		return false
	}
	for len(p) > 0 && c.n < 4 {
		c.idBuf[c.n] = p[0]
		c.n++
		p = p[1:]
		if c.n == 4 {
			c.id = binary.LittleEndian.Uint32(c.idBuf[:])
			if c.id == 0 || c.id >= maxSessionID {
				c.bad = true
				c.detail = fmt.Sprintf("first record names session %#x, which no client is", c.id)
				if m := c.id ^ binary.LittleEndian.Uint32(maskKey[:]); m > 0 && m < maxSessionID {
					c.detail += fmt.Sprintf(" (session %d's bytes, still masked)", m)
				}
				return false
			}
		}
	}
	for _, b := range p {
		if want := patternByte(c.id, c.n); b != want {
			c.bad = true
			c.detail = fmt.Sprintf("session %d: byte %d is %#02x, the client sent %#02x there", c.id, c.n, b, want)
			return false
		}
		c.n++
	}
	return true
}
