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
	ModeEcho      Mode = iota // sends back every byte it reads
	ModeFirehose              // sends a constant pattern, at a rate or flat out; discards input
	ModeSink                  // reads and discards; sends nothing
	ModeRFB                   // mostly idle, with screen-update bursts; discards input
	ModeCheck                 // reads and checks every byte against the sessions' pattern (pattern.go); sends nothing
	ModeSlowCheck             // ModeCheck reading at most BackendConfig.SlowRate bytes/s per connection
	numModes
)

var modeNames = [numModes]string{"echo", "firehose", "sink", "rfb", "check", "slow-check"}

func (m Mode) String() string { return modeNames[m] }

// BackendConfig sets the consoles' behaviour for one run.
type BackendConfig struct {
	Rate          int64         // firehose bytes/s per session; 0 is flat out
	BurstBytes    int           // rfb: bytes per burst
	BurstInterval time.Duration // rfb: mean gap between bursts
	SlowRate      int64         // slow-check: bytes/s each connection reads; 0 is flat out
	// BurstSeed seeds the rfb connections' gaps: the k-th rfb connection
	// draws them from (BurstSeed, k), so two backends of one seed offer the
	// same bursts at the same times after StartSending (a round's targets
	// compared on the same load, not on how many bursts chance put in a
	// short window).
	BurstSeed uint64
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
	open     [numModes]atomic.Int64 // connections being served now
	checks   checkLog
	ids      atomic.Uint32         // pattern session ids handed out (NewSessionID)
	stopping [numModes]atomic.Bool // set by Quiesce: senders stop at a chunk boundary
	sending  chan struct{}         // closed by StartSending: senders wait for it
	sendOnce sync.Once
	sentAt   time.Time     // when StartSending ran; written before sending closes
	rfbConns atomic.Uint64 // rfb senders started (each one's seed)
	pattern  []byte        // read-only, shared by every firehose and burst writer
	mu       sync.Mutex    // guards conns
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

// NewSessionID numbers a client session that sends the pattern: from 1,
// never twice for one backend (its check consoles take a second host
// connection with the same number for corruption).
func (b *Backend) NewSessionID() uint32 { return b.ids.Add(1) }

// Open is how many host connections of mode m are being served now.
func (b *Backend) Open(m Mode) int64 { return b.open[m].Load() }

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
func (b *Backend) StartSending() {
	b.sendOnce.Do(func() { b.sentAt = time.Now(); close(b.sending) })
}

// Quiesce stops every sender (firehose, bursts) after its current write.
func (b *Backend) Quiesce() {
	for m := range numModes {
		b.stopping[m].Store(true)
	}
}

// QuiesceMode stops mode m's senders only; ResumeMode lets that mode's
// connections opened afterwards send again (the soak reuses one backend).
func (b *Backend) QuiesceMode(m Mode) { b.stopping[m].Store(true) }

// ResumeMode undoes QuiesceMode for connections that start sending later.
func (b *Backend) ResumeMode(m Mode) { b.stopping[m].Store(false) }

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
		b.open[m].Add(1)
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
		b.open[m].Add(-1)
	}()
	switch m {
	case ModeEcho:
		b.echo(c)
	case ModeCheck, ModeSlowCheck:
		b.check(m, c)
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

// check reads c to its end, checking every byte against the pattern (at
// most cfg.SlowRate bytes/s on ModeSlowCheck); a corrupt stream is logged
// and then read on unchecked, so that the proxy is not stalled by it.
func (b *Backend) check(m Mode, c net.Conn) {
	buf := make([]byte, 16<<10)
	var bucket *tokenBucket
	if m == ModeSlowCheck && b.cfg.SlowRate > 0 {
		bucket = newTokenBucket(b.cfg.SlowRate)
	}
	var sc streamCheck
	for {
		want := len(buf)
		if bucket != nil {
			want = bucket.take(want)
		}
		n, err := c.Read(buf[:want])
		if bucket != nil {
			bucket.giveBack(want - n)
		}
		if n > 0 {
			b.received[m].Add(int64(n))
			wasID := sc.n >= 4
			if !sc.feed(buf[:n]) && sc.detail != "" {
				b.checks.corrupt(sc.detail)
				sc.detail = ""
			}
			if !wasID && sc.n >= 4 && !sc.bad {
				b.checks.claim(&sc)
			}
		}
		if err != nil {
			return
		}
	}
}

// checkLog is what the check consoles found, across their connections.
type checkLog struct {
	mu      sync.Mutex
	seen    map[uint32]bool // session ids whose host connection has begun
	bad     int             // corrupt host connections
	details []string        // the first few corruptions, for the report
}

// maxCorruptDetails bounds the corruptions described in a result.
const maxCorruptDetails = 5

func (l *checkLog) corrupt(detail string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bad++
	if len(l.details) < maxCorruptDetails {
		l.details = append(l.details, detail)
	}
}

// claim records that sc's session has a host connection: a second host
// connection naming the same session got another session's bytes (each
// client session is dialled once by the proxy).
func (l *checkLog) claim(sc *streamCheck) {
	l.mu.Lock()
	if l.seen == nil {
		l.seen = map[uint32]bool{}
	}
	dup := l.seen[sc.id]
	l.seen[sc.id] = true
	l.mu.Unlock()
	if dup {
		sc.bad = true
		l.corrupt(fmt.Sprintf("session %d: a second host connection carries its bytes", sc.id))
	}
}

// Corrupt is how many host connections received a byte no client sent,
// and the first few of them described.
func (b *Backend) Corrupt() (int, []string) {
	b.checks.mu.Lock()
	defer b.checks.mu.Unlock()
	return b.checks.bad, append([]string(nil), b.checks.details...)
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
	began := time.Now()
	select {
	case <-b.sending:
	case <-done:
		return
	}
	pace := newPacer(b.cfg.Rate)
	var bursts *burstClock
	if m == ModeRFB {
		pace = nil
		bursts = b.newBurstClock(began)
	}
	for !b.stopping[m].Load() {
		chunk := len(b.pattern)
		switch {
		case m == ModeRFB:
			if !bursts.wait(done) {
				return
			}
			chunk = b.cfg.BurstBytes
		case pace != nil:
			if chunk = pace.next(chunk, done); chunk == 0 {
				return
			}
		}
		if b.stopping[m].Load() {
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

// burstClock is when an rfb connection's next burst is due: gaps drawn
// around the mean from the connection's own seeded source, counted from a
// fixed start so that the time a write takes does not shift the schedule.
type burstClock struct {
	rng  *rand.Rand
	mean time.Duration
	next time.Time
}

// newBurstClock starts the schedule of the next rfb connection: at
// StartSending for one that was waiting for it, else when it began.
func (b *Backend) newBurstClock(began time.Time) *burstClock {
	k := b.rfbConns.Add(1)
	start := b.sentAt
	if began.After(start) {
		start = began
	}
	return &burstClock{rng: rand.New(rand.NewPCG(b.cfg.BurstSeed, k)), mean: b.cfg.BurstInterval, next: start}
}

// gap is the next gap: uniform in [0.5, 1.5) × the mean.
func (bc *burstClock) gap() time.Duration {
	return time.Duration(float64(bc.mean) * (0.5 + bc.rng.Float64()))
}

// wait sleeps until the next burst is due; false when the peer left.
func (bc *burstClock) wait(done <-chan struct{}) bool {
	bc.next = bc.next.Add(bc.gap())
	t := time.NewTimer(time.Until(bc.next))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}

// tokenBucket paces a reader at rate bytes/s with bursts of at most
// 100 ms worth (an idle reader does not save up a fast catch-up). Used by
// one goroutine.
type tokenBucket struct {
	rate   float64
	tokens float64
	last   time.Time
}

func newTokenBucket(rate int64) *tokenBucket {
	return &tokenBucket{rate: float64(rate), last: time.Now()}
}

// take waits until at least one byte may go and returns how many (≤ n).
func (t *tokenBucket) take(n int) int {
	burst := max(t.rate/10, 1)
	for {
		now := time.Now()
		t.tokens = min(t.tokens+now.Sub(t.last).Seconds()*t.rate, burst)
		t.last = now
		if t.tokens >= 1 {
			k := min(n, int(t.tokens))
			t.tokens -= float64(k)
			return k
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// giveBack returns k bytes taken but not used.
func (t *tokenBucket) giveBack(k int) {
	if k > 0 {
		t.tokens += float64(k)
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
