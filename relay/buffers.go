//go:build linux

package relay

import "github.com/valyala/bytebufferpool"

// Headroom is the space kept free before host data in a read buffer, so the
// client side can write a WebSocket frame header (at most 10 bytes for a
// server frame) in front of the payload and send both as one slice.
const Headroom = 16

// DefaultReadSize is how much host data one read takes (the payload of at
// most one WebSocket frame toward the client). Near 64 KiB: half the reads,
// wake-ups and writes per MB of a 32 KiB read (stream-down: ×0.75 of the
// proxy's CPU per GB, BENCHMARKS.md "Performance, round 2"); small reads do
// not pay for it (copyMax). 128 bytes short of 64 KiB so that a full read's
// frame (its 4-byte header included) fits one loopback TCP segment, IPv6's
// included (MSS 65,464): a whole 64 KiB payload made a 65,546-byte frame,
// which went out as a full segment and a 63-byte one, twice the packets
// and wake-ups per write (stream-down at one session ×0.81 → ×1.20 of
// haproxy's MB/s; BENCHMARKS.md "Performance, round 6").
const DefaultReadSize = 64<<10 - 128

// copyMax is the largest read handed over in a buffer of its own size: the
// poller reads into its one big buffer and copies a read this small out of
// it, so keystroke echoes and small screen updates in flight hold a few
// hundred bytes each, not a whole read buffer (9,000 sessions echoing at
// once held 32 KiB each until their frames were written, and the heap kept
// the pages). A bigger read hands the big buffer itself over, uncopied.
const copyMax = 2 << 10

// readPool holds big read buffers (Headroom+ReadSize), smallPool the copies
// of small reads. PutBuffer tells them apart by capacity.
var readPool, smallPool bytebufferpool.Pool

// getBuffer returns a pooled buffer of len headroom+size.
func getBuffer(size int) *bytebufferpool.ByteBuffer {
	return sized(&readPool, Headroom+size)
}

// smallCopy returns a pooled buffer holding p after the headroom.
func smallCopy(p []byte) *bytebufferpool.ByteBuffer {
	b := sized(&smallPool, Headroom+len(p))
	copy(b.B[Headroom:], p)
	return b
}

func sized(pool *bytebufferpool.Pool, n int) *bytebufferpool.ByteBuffer {
	b := pool.Get()
	if cap(b.B) < n {
		b.B = make([]byte, n)
	}
	b.B = b.B[:n]
	return b
}

// PutBuffer returns a buffer that HostData handed over. Nobody may touch b
// afterwards. Its length is restored first: bytebufferpool calibrates on
// len(b.B), and a short length would make it drop big buffers every time.
func PutBuffer(b *bytebufferpool.ByteBuffer) {
	b.B = b.B[:cap(b.B)]
	if cap(b.B) <= Headroom+copyMax {
		smallPool.Put(b)
		return
	}
	readPool.Put(b)
}

// TestBuffer is a read buffer holding n host bytes, as a poller hands to
// Sink.HostData: for tests of sinks.
func TestBuffer(n int) *bytebufferpool.ByteBuffer { return getBuffer(n) }
