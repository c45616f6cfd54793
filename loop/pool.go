//go:build linux

package loop

import (
	"context"
	"sync"
	"sync/atomic"
)

// pool is the fixed set of goroutines that do blocking work (token lookups,
// DNS) for handshakes, fed by a bounded queue. When the queue is full
// a new handshake is refused with 503 rather than piling up.
type pool struct {
	jobs chan func()
	quit chan struct{} // closed by stop
	wg   sync.WaitGroup
	// offLoop counts jobs queued or running (with the server's other work
	// off the loops: holdP).
	offLoop *atomic.Int64
}

func newPool(workers, queue int, offLoop *atomic.Int64) *pool {
	p := &pool{jobs: make(chan func(), queue), quit: make(chan struct{}), offLoop: offLoop}
	for i := 0; i < workers; i++ {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.work()
		}()
	}
	return p
}

// work runs jobs until stop; once stopped it takes no further job.
func (p *pool) work() {
	for {
		select {
		case <-p.quit:
			return
		default:
		}
		select {
		case job := <-p.jobs:
			job()
			p.offLoop.Add(-1)
		case <-p.quit:
			return
		}
	}
}

// submit queues job unless the queue is full. After stop a job may be
// queued but never runs.
func (p *pool) submit(job func()) bool {
	p.offLoop.Add(1) // before the job can run (and count itself out)
	select {
	case p.jobs <- job:
		return true
	default:
		p.offLoop.Add(-1)
		return false
	}
}

// stop lets each worker finish the job it is in and waits for them until
// ctx ends. Jobs still queued are dropped: Shutdown has ended their
// sessions, so they need no lookup and no dial. false means some worker is
// still busy (blocked in a lookup or a dial); it is abandoned and exits
// when its job returns.
func (p *pool) stop(ctx context.Context) bool {
	close(p.quit)
	return waitGroup(ctx, &p.wg)
}
