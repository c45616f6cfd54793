package bench

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// progress is the live line while a run goes: sessions up, throughput,
// elapsed. On a terminal it rewrites one line with \r; otherwise it prints
// a plain line every few seconds. Its fields are guarded by mu.
type progress struct {
	w    io.Writer
	tty  bool
	mu   sync.Mutex
	line bool // a \r line is showing and must be ended before a note
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok {
		_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		p.tty = err == nil
	}
	return p
}

// note prints a line of its own.
func (p *progress) note(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.line {
		fmt.Fprintln(p.w)
		p.line = false
	}
	fmt.Fprintln(p.w, s)
}

// start shows progress for one run until the returned stop is called.
func (p *progress) start(label string, c *Client, want int) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		p.watch(label, c, want, done)
	}()
	return func() { close(done); <-finished }
}

func (p *progress) watch(label string, c *Client, want int, done <-chan struct{}) {
	every := time.Second
	if !p.tty {
		every = 5 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	start := time.Now()
	last, lastAt := int64(0), start
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			tot := c.Totals()
			bytes := tot.Sent + tot.Received
			mbps := float64(bytes-last) / 1e6 / now.Sub(lastAt).Seconds()
			last, lastAt = bytes, now
			p.show(fmt.Sprintf("%s: up %d/%d, failed %d, %.1f MB/s, %.0fs", label, tot.Live, want, tot.Failed, mbps,
				now.Sub(start).Seconds()))
		}
	}
}

func (p *progress) show(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", s)
		p.line = true
		return
	}
	fmt.Fprintln(p.w, s)
}
