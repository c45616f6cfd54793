//go:build linux

package loop

import (
	"math/bits"
	"sync"

	"github.com/valyala/bytebufferpool"
)

// pendingFrame is a buffer handed to gnet's AsyncWrite, waiting for its
// callback.
type pendingFrame struct {
	buf    *bytebufferpool.ByteBuffer
	n      int  // host bytes it carries
	wire   int  // the frame's bytes (header, base64 growth included)
	pooled bool // from bytebufferpool (base64), not relay's read pool
}

// sentQueue holds the frames in flight to one client, in AsyncWrite order:
// gnet runs the callbacks in the same order, so each callback pops the
// front. This lets one callback, bound once per session, serve every frame
// (a closure per frame would be one more allocation each). The poller
// goroutine pushes, the client's loop pops. The ring goes back to a pool
// whenever the queue drains, so an idle session holds none, however much
// it carried before.
type sentQueue struct {
	mu   sync.Mutex
	ring *frameRing // nil while no frame is in flight
	head int
	n    int
}

// frameRing is a ring's storage, pooled by size class.
type frameRing struct{ f []pendingFrame }

// Rings hold 4 << class frames; classes up to ringClasses-1 (256 frames)
// are pooled, a bigger ring is left to the garbage collector when it
// drains.
const (
	minRingShift = 2 // the smallest ring: 4 frames
	ringClasses  = 7
)

// rings pools drained rings by size class, so a session that drains
// between bursts gets a ring back without allocating.
var rings [ringClasses]sync.Pool

// getRing returns an empty ring of 4 << class frames.
func getRing(class int) *frameRing {
	if class < ringClasses {
		if r, ok := rings[class].Get().(*frameRing); ok {
			return r
		}
	}
	return &frameRing{f: make([]pendingFrame, 1<<(minRingShift+class))}
}

// putRing pools r, which must hold no frame (pop clears each slot).
func putRing(r *frameRing) {
	if class := ringClass(len(r.f)); class < ringClasses {
		rings[class].Put(r)
	}
}

// ringClass is the size class of a ring of n frames (a power of two, at
// least 4).
func ringClass(n int) int { return bits.Len(uint(n)) - 1 - minRingShift }

func (q *sentQueue) push(f pendingFrame) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ring == nil {
		q.ring, q.head = getRing(0), 0
	}
	if r := q.ring.f; q.n == len(r) {
		grown := getRing(ringClass(len(r)) + 1)
		for i := 0; i < q.n; i++ {
			j := (q.head + i) % len(r)
			grown.f[i], r[j] = r[j], pendingFrame{}
		}
		putRing(q.ring)
		q.ring, q.head = grown, 0
	}
	r := q.ring.f
	r[(q.head+q.n)%len(r)] = f
	q.n++
}

// pop removes the oldest frame; ok is false when none is queued.
func (q *sentQueue) pop() (pendingFrame, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		return pendingFrame{}, false
	}
	r := q.ring.f
	f := r[q.head]
	r[q.head] = pendingFrame{}
	q.head = (q.head + 1) % len(r)
	q.n--
	q.drained()
	return f, true
}

// popNewest takes back the frame just pushed (its AsyncWrite failed, so no
// callback will come for it).
func (q *sentQueue) popNewest() (pendingFrame, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		return pendingFrame{}, false
	}
	r := q.ring.f
	q.n--
	i := (q.head + q.n) % len(r)
	f := r[i]
	r[i] = pendingFrame{}
	q.drained()
	return f, true
}

// drained gives the ring back once no frame is in flight. q.mu held.
func (q *sentQueue) drained() {
	if q.n == 0 {
		putRing(q.ring)
		q.ring, q.head = nil, 0
	}
}
