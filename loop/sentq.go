//go:build linux

package loop

import (
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
// goroutine pushes, the client's loop pops.
type sentQueue struct {
	mu   sync.Mutex
	ring []pendingFrame
	head int
	n    int
}

func (q *sentQueue) push(f pendingFrame) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == len(q.ring) {
		grown := make([]pendingFrame, max(4, 2*len(q.ring)))
		for i := 0; i < q.n; i++ {
			grown[i] = q.ring[(q.head+i)%len(q.ring)]
		}
		q.ring, q.head = grown, 0
	}
	q.ring[(q.head+q.n)%len(q.ring)] = f
	q.n++
}

// pop removes the oldest frame; ok is false when none is queued.
func (q *sentQueue) pop() (pendingFrame, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		return pendingFrame{}, false
	}
	f := q.ring[q.head]
	q.ring[q.head] = pendingFrame{}
	q.head = (q.head + 1) % len(q.ring)
	q.n--
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
	q.n--
	i := (q.head + q.n) % len(q.ring)
	f := q.ring[i]
	q.ring[i] = pendingFrame{}
	return f, true
}
