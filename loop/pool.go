package loop

import "sync"

// pool is the fixed set of goroutines that do blocking work (token lookups,
// DNS) for handshakes, fed by a bounded queue. When the queue is full
// a new handshake is refused with 503 rather than piling up.
type pool struct {
	jobs chan func()
	wg   sync.WaitGroup
}

func newPool(workers, queue int) *pool {
	p := &pool{jobs: make(chan func(), queue)}
	for i := 0; i < workers; i++ {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for job := range p.jobs {
				job()
			}
		}()
	}
	return p
}

// submit queues job unless the queue is full. It must not be called after stop.
func (p *pool) submit(job func()) bool {
	select {
	case p.jobs <- job:
		return true
	default:
		return false
	}
}

// stop waits for queued jobs to finish.
func (p *pool) stop() {
	close(p.jobs)
	p.wg.Wait()
}
