//go:build linux

package loop

import (
	"sync"

	"github.com/valyala/bytebufferpool"
)

// compactMax is the largest payload moved in place to join the one before
// it. Masked client frames are never adjacent (a header of 6 to 14 bytes
// sits between payloads), so without this a storm of tiny frames would cost
// one iovec each (past IOV_MAX, 1,024, writev fails). Moving at most 2 KiB
// per frame keeps the iovecs of a 64 KiB batch at most 33 while large
// payloads still go out where they lie, uncopied.
const compactMax = 2 << 10

// maxBatchIOV is the most iovecs one batch can need: one per payload above
// compactMax in a maxPeek batch, one run of compacted payloads before each,
// the base64 scratch buffer, and slack.
const maxBatchIOV = 2*(maxPeek/compactMax) + 4

// upBatch gathers the data payloads of one parsed batch for a single writev
// toward the host. Payloads are slices of the batch buffer (borrowed from
// gnet until the batch is discarded); small ones are moved toward the front
// of that buffer, over headers already parsed, so they join the previous
// payload in one iovec. Loop only; pooled, so idle sessions hold none.
type upBatch struct {
	iov  [][]byte
	buf  []byte // the batch being parsed
	seg  int    // start in buf of the last iovec; -1 if the last one is not in buf
	end  int    // end in buf of the last iovec
	size int    // bytes in iov
	// scratch holds decoded base64 payloads until the batch is written.
	scratch *bytebufferpool.ByteBuffer
}

var upBatches = sync.Pool{New: func() any { return &upBatch{iov: make([][]byte, 0, maxBatchIOV)} }}

func getUpBatch(buf []byte) *upBatch {
	b := upBatches.Get().(*upBatch)
	b.buf, b.seg, b.end, b.size = buf, -1, 0, 0
	return b
}

// scratchBuffer is b's buffer for decoded bytes, released with b.
func (b *upBatch) scratchBuffer() *bytebufferpool.ByteBuffer {
	if b.scratch == nil {
		b.scratch = bytebufferpool.Get()
	}
	return b.scratch
}

// put clears b (no slice of gnet's buffer outlives the batch) and pools it.
func (b *upBatch) put() {
	if b.scratch != nil {
		bytebufferpool.Put(b.scratch)
		b.scratch = nil
	}
	clear(b.iov)
	b.iov, b.buf = b.iov[:0], nil
	upBatches.Put(b)
}

// add takes payload p, which ends at offset end of the batch buffer.
func (b *upBatch) add(p []byte, end int) {
	if len(p) == 0 {
		return
	}
	b.size += len(p)
	start := end - len(p)
	switch {
	case b.seg >= 0 && start == b.end: // adjacent: extend
	case b.seg >= 0 && len(p) <= compactMax:
		copy(b.buf[b.end:], p) // forward over parsed bytes: never past start
	default:
		b.iov = append(b.iov, nil)
		b.seg = start
		b.end = start
	}
	b.end += len(p)
	b.iov[len(b.iov)-1] = b.buf[b.seg:b.end]
}

// addOther takes bytes that are not in the batch buffer (decoded base64).
func (b *upBatch) addOther(p []byte) {
	if len(p) == 0 {
		return
	}
	b.iov = append(b.iov, p)
	b.size += len(p)
	b.seg = -1
}
