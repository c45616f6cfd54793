package bench

import (
	"encoding/binary"
	"strconv"
)

// The wire formats the client writes, built once per Client and read-only
// afterwards (every loop shares them).

// maskKey masks every client frame. RFC 6455 §5.3 wants an unpredictable
// key from browsers; a proxy only checks that frames are masked, and a fixed
// key lets the harness pre-mask its payloads so the client stays cheap.
var maskKey = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// wire holds the pre-built frames and the sizes that parse replies.
type wire struct {
	ws       bool
	msgSize  int    // echo message payload bytes (≥ 8: a send timestamp first)
	msgFrame []byte // template of one echo message frame (header + masked payload); copied before patching
	msgHdr   int    // header bytes in msgFrame
	stream   []byte // stream-up template: whole frames back to back
	unit     int    // bytes per stream frame (header + payload); 1 over plain TCP
	unitHdr  int    // header bytes per stream frame
	closeFr  []byte // a masked close frame, code 1000
}

func newWire(ws bool, msgSize, frameSize int) *wire {
	w := &wire{ws: ws, msgSize: msgSize}
	w.msgFrame, w.msgHdr = frame(ws, make([]byte, msgSize))
	payload := make([]byte, frameSize)
	for i := range payload {
		payload[i] = byte('A' + i%26)
	}
	one, hdr := frame(ws, payload)
	w.unit, w.unitHdr = len(one), hdr
	for len(w.stream) < 64<<10 || len(w.stream) < len(one) {
		w.stream = append(w.stream, one...)
	}
	if !ws {
		w.unit, w.unitHdr = 1, 0
	}
	w.closeFr, _ = frame(true, []byte{0x03, 0xe8})
	w.closeFr[0] = 0x88
	return w
}

// frame returns a masked binary frame carrying p (or p itself over plain
// TCP) and its header length. p is not retained.
func frame(ws bool, p []byte) ([]byte, int) {
	if !ws {
		return append([]byte(nil), p...), 0
	}
	h := []byte{0x82, 0x80}
	switch n := len(p); {
	case n < 126:
		h[1] |= byte(n)
	case n < 1<<16:
		h[1] |= 126
		h = binary.BigEndian.AppendUint16(h, uint16(n))
	default:
		h[1] |= 127
		h = binary.BigEndian.AppendUint64(h, uint64(n))
	}
	h = append(h, maskKey[:]...)
	out := append(h, p...)
	maskBytes(out[len(h):], 0)
	return out, len(h)
}

// maskBytes XORs p in place with the key, p starting at payload offset off.
func maskBytes(p []byte, off int) {
	for i := range p {
		p[i] ^= maskKey[(off+i)&3]
	}
}

// putStamp writes the send time into a copy of the message frame in dst
// (len(msgFrame)), masked as the frame requires. dst is owned by the caller.
func (w *wire) putStamp(dst []byte, nanos int64) {
	copy(dst, w.msgFrame)
	binary.LittleEndian.PutUint64(dst[w.msgHdr:], uint64(nanos))
	if w.ws {
		maskBytes(dst[w.msgHdr:w.msgHdr+8], 0)
	}
}

// streamPayload is the payload bytes among the first x bytes of the stream
// template's cycle (frame headers excluded).
func (w *wire) streamPayload(x int64) int64 {
	u, h := int64(w.unit), int64(w.unitHdr)
	return x/u*(u-h) + max(0, x%u-h)
}

// upgradeRequest is the HTTP/1.1 WebSocket upgrade for one session.
func upgradeRequest(host, path string) []byte {
	b := make([]byte, 0, 256+len(path))
	b = append(b, "GET "...)
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"+
		"Sec-WebSocket-Protocol: binary\r\n\r\n"...)
	return b
}

// statusOf returns the status code of an HTTP response head, or 0.
func statusOf(head []byte) int {
	if len(head) < 12 || string(head[:5]) != "HTTP/" {
		return 0
	}
	i := 0
	for i < len(head) && head[i] != ' ' {
		i++
	}
	if i+4 > len(head) {
		return 0
	}
	code, err := strconv.Atoi(string(head[i+1 : i+4]))
	if err != nil {
		return 0
	}
	return code
}
