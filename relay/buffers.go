//go:build linux

package relay

import "github.com/valyala/bytebufferpool"

// Headroom is the space kept free before host data in a read buffer, so the
// client side can write a WebSocket frame header (at most 10 bytes for a
// server frame) in front of the payload and send both as one slice.
const Headroom = 16

// DefaultReadSize is how much host data one read takes (the payload of at
// most one WebSocket frame toward the client).
const DefaultReadSize = 32 << 10

var readPool bytebufferpool.Pool

// getBuffer returns a pooled buffer of len headroom+size.
func getBuffer(size int) *bytebufferpool.ByteBuffer {
	b := readPool.Get()
	if cap(b.B) < Headroom+size {
		b.B = make([]byte, Headroom+size)
	}
	b.B = b.B[:Headroom+size]
	return b
}

// PutBuffer returns a buffer that HostData handed over. Nobody may touch b
// afterwards. Its length is restored first: bytebufferpool calibrates on
// len(b.B), and a short length would make it drop big buffers every time.
func PutBuffer(b *bytebufferpool.ByteBuffer) {
	b.B = b.B[:cap(b.B)]
	readPool.Put(b)
}

// TestBuffer is a read buffer holding n host bytes, as a poller hands to
// Sink.HostData: for tests of sinks.
func TestBuffer(n int) *bytebufferpool.ByteBuffer { return getBuffer(n) }
