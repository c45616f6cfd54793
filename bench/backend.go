package bench

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Mode is what a compute-host console does with its session.
type Mode int

// The built-in consoles, one listener each.
const (
	ModeEcho     Mode = iota // sends back every byte it reads
	ModeFirehose             // sends a constant pattern, at a rate or flat out; discards input
	ModeSink                 // reads and discards; sends nothing
	ModeRFB                  // mostly idle, with screen-update bursts; discards input
	numModes
)

var modeNames = [numModes]string{"echo", "firehose", "sink", "rfb"}

func (m Mode) String() string { return modeNames[m] }

// BackendConfig sets the consoles' behaviour for one run.
type BackendConfig struct {
	Rate          int64         // firehose bytes/s per session; 0 is flat out
	BurstBytes    int           // rfb: bytes per burst
	BurstInterval time.Duration // rfb: mean gap between bursts
}

// Backend is the compute-host side: one loopback listener per Mode, serving
// every session of a run. A backend connection is a goroutine (the client
// side is the event loop that must not be the bottleneck). Counters are
// atomics, updated by the connection goroutines and read by anyone.
type Backend struct {
	cfg      BackendConfig
	lns      [numModes]net.Listener
	sent     [numModes]atomic.Int64 // payload bytes written to the proxy
	received [numModes]atomic.Int64 // payload bytes read from the proxy
	accepted atomic.Int64
	stopping atomic.Bool   // set by Quiesce: senders stop at a chunk boundary
	sending  chan struct{} // closed by StartSending: senders wait for it
	sendOnce sync.Once
	pattern  []byte     // read-only, shared by every firehose and burst writer
	mu       sync.Mutex // guards conns
	conns    map[net.Conn]struct{}
	wg       sync.WaitGroup
}

// StartBackend listens on 127.0.0.1 (one ephemeral port per mode).
func StartBackend(cfg BackendConfig) (*Backend, error) {
	b := &Backend{cfg: cfg, conns: map[net.Conn]struct{}{}, pattern: make([]byte, 64<<10),
		sending: make(chan struct{})}
	for i := range b.pattern {
		b.pattern[i] = byte('a' + i%26)
	}
	for m := range numModes {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("backend listen: %w", err)
		}
		b.lns[m] = ln
		b.wg.Add(1)
		go b.accept(Mode(m), ln)
	}
	return b, nil
}

// Addr is the listening address of mode m's console.
func (b *Backend) Addr(m Mode) *net.TCPAddr { return b.lns[m].Addr().(*net.TCPAddr) }

// Sent and Received are totals over all modes' connections.
func (b *Backend) Sent() (n int64) {
	for m := range numModes {
		n += b.sent[m].Load()
	}
	return n
}

// Received is the payload bytes read from the proxy, all modes.
func (b *Backend) Received() (n int64) {
	for m := range numModes {
		n += b.received[m].Load()
	}
	return n
}

// StartSending lets the senders (firehose, bursts) go: sessions open first,
// then all stream at once.
func (b *Backend) StartSending() { b.sendOnce.Do(func() { close(b.sending) }) }

// Quiesce stops every sender (firehose, bursts) after its current write.
func (b *Backend) Quiesce() { b.stopping.Store(true) }

// Close closes the listeners and every connection, and waits for their goroutines.
func (b *Backend) Close() {
	for _, ln := range b.lns {
		if ln != nil {
			ln.Close()
		}
	}
	b.StartSending()
	b.mu.Lock()
	for c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

func (b *Backend) accept(m Mode, ln net.Listener) {
	defer b.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		b.accepted.Add(1)
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetReadBuffer(sockBuf)
			tc.SetWriteBuffer(sockBuf)
		}
		b.mu.Lock()
		b.conns[c] = struct{}{}
		b.mu.Unlock()
		b.wg.Add(1)
		go b.serve(m, c)
	}
}

func (b *Backend) serve(m Mode, c net.Conn) {
	defer b.wg.Done()
	defer func() {
		b.mu.Lock()
		delete(b.conns, c)
		b.mu.Unlock()
		c.Close()
	}()
	switch m {
	case ModeEcho:
		b.echo(c)
	case ModeSink:
		b.discard(m, c, 64<<10)
	case ModeFirehose, ModeRFB:
		done := make(chan struct{})
		go func() { b.discard(m, c, 512); close(done) }()
		b.send(m, c, done)
		<-done
	}
}

// echo copies input to output with a small per-connection buffer (idle
// sessions are the many).
func (b *Backend) echo(c net.Conn) {
	buf := make([]byte, 4<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			b.received[ModeEcho].Add(int64(n))
			w, werr := c.Write(buf[:n])
			b.sent[ModeEcho].Add(int64(w))
			if werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (b *Backend) discard(m Mode, c net.Conn, size int) {
	buf := make([]byte, size)
	for {
		n, err := c.Read(buf)
		b.received[m].Add(int64(n))
		if err != nil {
			return
		}
	}
}

// send writes the shared pattern until Quiesce or the peer goes away: flat
// out or paced (firehose), or in bursts (rfb).
func (b *Backend) send(m Mode, c net.Conn, done <-chan struct{}) {
	select {
	case <-b.sending:
	case <-done:
		return
	}
	pace := newPacer(b.cfg.Rate)
	if m == ModeRFB {
		pace = nil
	}
	for !b.stopping.Load() {
		chunk := len(b.pattern)
		switch {
		case m == ModeRFB:
			if !b.waitBurst(done) {
				return
			}
			chunk = b.cfg.BurstBytes
		case pace != nil:
			if chunk = pace.next(chunk, done); chunk == 0 {
				return
			}
		}
		if b.stopping.Load() {
			return
		}
		if !b.write(m, c, chunk) {
			return
		}
	}
}

// write sends chunk bytes of the pattern; false when the connection failed.
func (b *Backend) write(m Mode, c net.Conn, chunk int) bool {
	for chunk > 0 {
		p := b.pattern[:min(chunk, len(b.pattern))]
		n, err := c.Write(p)
		b.sent[m].Add(int64(n))
		chunk -= n
		if err != nil {
			return false
		}
	}
	return true
}

// waitBurst sleeps a random gap around the mean; false when the peer left.
func (b *Backend) waitBurst(done <-chan struct{}) bool {
	gap := time.Duration(float64(b.cfg.BurstInterval) * (0.5 + rand.Float64()))
	t := time.NewTimer(gap)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}

// pacer spreads a byte rate over 10 ms ticks.
type pacer struct {
	rate  int64
	start time.Time
	sent  int64
}

func newPacer(rate int64) *pacer {
	if rate <= 0 {
		return nil
	}
	return &pacer{rate: rate, start: time.Now()}
}

// next returns how many bytes (at most max) may go now, sleeping until some may.
func (p *pacer) next(max int, done <-chan struct{}) int {
	for {
		allowed := int64(time.Since(p.start).Seconds()*float64(p.rate)) - p.sent
		if allowed > 0 {
			n := int(min(allowed, int64(max)))
			p.sent += int64(n)
			return n
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-done:
			return 0
		}
	}
}
