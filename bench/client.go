package bench

import (
	"fmt"
	"net"
	"runtime"
	"sync/atomic"
	"time"
)

// ClientConfig is how the client reaches the target under test.
type ClientConfig struct {
	Loops         int
	SourceAddrs   int // 127.0.0.2 … 127.0.0.(1+SourceAddrs)
	MaxInflight   int // connects and handshakes in flight per loop
	WebSocket     bool
	Addrs         [numModes]*net.TCPAddr // where a session of each console mode connects
	Host          string                 // the Host header
	Path          func(token int) string // the request URI for a token (WebSocket only)
	MsgSize       int                    // echo message bytes (≥ 8)
	FrameSize     int                    // stream-up frame payload bytes
	StreamRate    int64                  // stream-up payload bytes per second per session; 0 is flat out
	ChurnMessages int                    // churn: echoes before a session closes
	TokenPool     int                    // churn: tokens cycle through 0…TokenPool-1
	FDLimit       int                    // highest fd the loops may hold
}

// Client drives sessions on a few event loops (never a goroutine per
// session). Its methods are safe from one controlling goroutine.
type Client struct {
	cfg           ClientConfig
	wire          *wire
	loops         []*loop
	epoch         time.Time
	fdLimit       int
	token         atomic.Int64
	next          int // round-robin loop for Open (controlling goroutine)
	churnMessages int
}

// NewClient starts the loops, first raising GOMAXPROCS (raiseProcs).
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.FDLimit == 0 {
		cfg.FDLimit = 1 << 16
	}
	raiseProcs(cfg.Loops)
	c := &Client{cfg: cfg, wire: newWire(cfg.WebSocket, cfg.MsgSize, cfg.FrameSize),
		epoch: time.Now(), fdLimit: cfg.FDLimit, churnMessages: max(cfg.ChurnMessages, 1)}
	for range cfg.Loops {
		l, err := newLoop(c)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("client loop: %w", err)
		}
		c.loops = append(c.loops, l)
		go l.run()
	}
	return c, nil
}

func (c *Client) since() time.Duration { return time.Since(c.epoch) }

// raiseProcs raises GOMAXPROCS, never lowering it, to loops plus the CPU
// count: a P for each client loop and the CPUs' count more. A loop waits in
// epoll_wait (a system call) holding its P, and Go's runtime takes a P back
// from a thread in a system call only when sysmon next looks, 20 µs to
// 10 ms later. With GOMAXPROCS at the CPU count and a loop per CPU, a
// backend goroutine (the echoing console) made ready by the network waited
// for that, up to 2 ms measured, and the wait was counted as the target's
// latency (DECISIONS.md "consolebench: the backend gets Ps of its own").
// The CPUs are shared as before; the extra Ps only let the kernel schedule
// the backend beside the loops.
func raiseProcs(loops int) {
	if n := loops + runtime.NumCPU(); n > runtime.GOMAXPROCS(0) {
		runtime.GOMAXPROCS(n)
	}
}

func (c *Client) nextToken() int {
	return int(c.token.Add(1)-1) % max(c.cfg.TokenPool, 1)
}

// Close ends every session (as harness closes) and stops the loops.
func (c *Client) Close() {
	for _, l := range c.loops {
		l.exec(func() { l.churning = false; l.quit = true })
	}
	for _, l := range c.loops {
		<-l.done
	}
}

// Open queues sessions, spread round-robin over the loops. Churn sessions
// take their tokens from the churn cycle (ss's Token is ignored), so that a
// token comes back only after the whole pool has been used.
func (c *Client) Open(ss []Session) {
	per := make([][]Session, len(c.loops))
	for _, s := range ss {
		if s.Churn {
			s.Token = c.nextToken()
		}
		per[c.next] = append(per[c.next], s)
		c.next = (c.next + 1) % len(c.loops)
	}
	for i, l := range c.loops {
		batch := per[i]
		l.exec(func() { l.queue = append(l.queue, batch...) })
	}
}

// Totals sums the loops' counters.
type Totals struct {
	Started, Opened, Failed, Closed, Live int64
	Sent, Received, Messages, Verifying   int64
}

// Ended is the sessions that ended either way.
func (t Totals) Ended() int64 { return t.Failed + t.Closed }

// Totals reads the counters now.
func (c *Client) Totals() Totals {
	var t Totals
	for _, l := range c.loops {
		s := &l.stats
		t.Started += s.started.Load()
		t.Opened += s.opened.Load()
		t.Failed += s.failed.Load()
		t.Closed += s.closed.Load()
		t.Live += s.live.Load()
		t.Sent += s.sent.Load()
		t.Received += s.recv.Load()
		t.Messages += s.msgs.Load()
		t.Verifying += s.verifying.Load()
	}
	return t
}

// WaitFor polls until cond holds or timeout passes; it reports whether cond held.
func (c *Client) WaitFor(timeout time.Duration, cond func(Totals) bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond(c.Totals()) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// each runs f on every loop and waits.
func (c *Client) each(f func(l *loop)) {
	for _, l := range c.loops {
		l.call(func() { f(l) })
	}
}

// StartPacing makes every open Paced session send rate echo messages per second.
func (c *Client) StartPacing(rate float64) {
	c.each(func(l *loop) {
		l.pacing, l.paceRate, l.paceStart, l.paceDone, l.paced = true, rate, l.cl.since(), 0, l.paced[:0]
		for _, s := range l.conns {
			if s != nil && s.state == stOpen && s.s.Paced {
				l.paced = append(l.paced, s)
			}
		}
	})
}

// StopPacing stops sending; replies still in flight keep arriving.
func (c *Client) StopPacing() { c.each(func(l *loop) { l.pacing, l.paced = false, nil }) }

// SetStream starts (on) or stops (off: at the end of each session's current
// frame) stream-up writing on every open session.
func (c *Client) SetStream(on bool) {
	c.each(func(l *loop) {
		l.stream = streamStopping
		if on {
			l.stream, l.streamStart = streamOn, l.cl.since()
		}
		for _, s := range l.conns {
			if s != nil && s.state == stOpen {
				s.streamBase = s.sent
				l.flush(s)
			}
		}
	})
}

// Verify sends one echo message on every open echo session; Totals.Verifying
// counts those still waiting for it.
func (c *Client) Verify() {
	c.each(func(l *loop) {
		for _, s := range l.conns {
			if s != nil && s.state == stOpen && s.s.Mode == ModeEcho && s.verifyAt == 0 {
				s.verifyAt = s.replies + 1
				l.stats.verifying.Add(1)
				l.sendMessage(s)
			}
		}
	})
}

// FailUnverified ends every session still waiting for its Verify echo.
func (c *Client) FailUnverified() {
	c.each(func(l *loop) {
		for _, s := range l.conns {
			if s != nil && s.verifyAt > 0 {
				l.fail(s, "no data flow after handshake")
			}
		}
	})
}

// SetChurn turns replacement of ended churn sessions on or off.
func (c *Client) SetChurn(on bool) { c.each(func(l *loop) { l.churning = on }) }

// CloseAll ends every session and drops queued ones.
func (c *Client) CloseAll() {
	c.each(func(l *loop) {
		l.churning = false
		l.queue = nil
		for _, s := range l.conns {
			if s != nil {
				l.closeConn(s)
			}
		}
	})
}

// Collect merges the loops' histograms (round trips, handshakes) and error counts.
func (c *Client) Collect() (rtt, hs *Histogram, errs map[string]int) {
	rtt, hs, errs = NewHistogram(), NewHistogram(), map[string]int{}
	c.each(func(l *loop) {
		rtt.Merge(l.rtt)
		hs.Merge(l.hs)
		for k, v := range l.errs {
			errs[k] += v
		}
	})
	return rtt, hs, errs
}

// CPUSeconds is the CPU the client loops' threads have used.
func (c *Client) CPUSeconds() float64 {
	var s float64
	for _, l := range c.loops {
		if tid := l.tid.Load(); tid > 0 {
			s += threadCPU(int(tid))
		}
	}
	return s
}
