//go:build linux

package relay

import (
	"errors"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Config sets the relay's pollers and its backpressure bounds.
type Config struct {
	// Pollers is the number of poller goroutines; 0 means runtime.NumCPU().
	Pollers int
	// Driven pollers run no goroutine: the caller drives each one from a
	// goroutine of its own (Relay.Poller: Fd, Poll), such as the event loop
	// whose sessions' host sockets it holds (Attach's poller). Relay.Close must come
	// after the drivers have stopped.
	Driven bool
	// ReadSize is the most one read from a host takes; 0 means DefaultReadSize.
	ReadSize int
	// HighWater is the most host data a session may have read but its client
	// not yet taken (in flight to the client's loop plus its outbound buffer);
	// past it the poller stops reading that host, so TCP flow control slows it
	// down. 0 means DefaultHighWater. A session can overshoot by one read.
	HighWater int64
	// LowWater is where reading resumes; 0 means HighWater/4.
	LowWater int64
	// WriteTimeout closes a host socket that takes no byte for this long
	// while bytes are held for it (the sink hears ErrWriteTimeout); it is
	// also the socket's TCP_USER_TIMEOUT. 0 turns both off.
	WriteTimeout time.Duration
}

// ErrWriteTimeout is how Sink.HostClosed reports a host that took no byte
// for Config.WriteTimeout while bytes were held for it.
var ErrWriteTimeout = errors.New("compute host took no byte within the write timeout")

// DefaultHighWater bounds host→client buffering per session. 256 KiB keeps a
// full-screen VNC update flowing on a fast link (the DESIGN measurement
// needed no more) while 5,000 stalled sessions cost at most 1.4 GB.
const DefaultHighWater = 256 << 10

func (c Config) withDefaults() Config {
	if c.Pollers <= 0 {
		c.Pollers = runtime.NumCPU()
	}
	if c.ReadSize <= 0 {
		c.ReadSize = DefaultReadSize
	}
	if c.HighWater <= 0 {
		c.HighWater = DefaultHighWater
	}
	if c.LowWater <= 0 || c.LowWater >= c.HighWater {
		c.LowWater = c.HighWater / 4
	}
	return c
}

// Relay is the set of pollers that own host sockets.
type Relay struct {
	cfg     Config
	pollers []*Poller
	next    atomic.Uint32
	opening atomic.Int64 // connects, CONNECT exchanges and awaited greetings in progress (Opening)
}

// Opening is the number of connects, CONNECT exchanges and awaited
// greetings the pollers have in progress (Open's poller steps):
// sessions waiting for their compute host, none of them holding a
// goroutine.
func (r *Relay) Opening() int64 { return r.opening.Load() }

// New starts the pollers.
func New(cfg Config) (*Relay, error) {
	r := &Relay{cfg: cfg.withDefaults()}
	for i := 0; i < r.cfg.Pollers; i++ {
		p, err := newPoller(r.cfg, r.cfg.Driven)
		if err != nil {
			r.Close()
			return nil, err
		}
		r.pollers = append(r.pollers, p)
	}
	return r, nil
}

// Config returns the configuration in force, defaults applied.
func (r *Relay) Config() Config { return r.cfg }

// ErrClosed is returned by Attach after Close.
var ErrClosed = errors.New("relay closed")

// Poller is driven poller i, made if the relay has fewer (an event loop
// more than Config.Pollers): for the caller that drives it, before any
// session uses the relay.
func (r *Relay) Poller(i int) (*Poller, error) {
	if !r.cfg.Driven {
		return nil, errors.New("relay: pollers run their own goroutines (Config.Driven is off)")
	}
	for len(r.pollers) <= i {
		p, err := newPoller(r.cfg, true)
		if err != nil {
			return nil, err
		}
		r.pollers = append(r.pollers, p)
	}
	return r.pollers[i], nil
}

// Attach hands a connected, non-blocking socket fd to a poller, which owns it
// from now on (it closes it, also when Start is never called but Close is).
// Nothing is read until Start, so the caller can store the Conn where the
// sink will look for it first. poller is the poller's index (as
// Relay.Poller); negative or out of range, the next in turn. With driven
// pollers, the one the sink's goroutine drives: the sink's methods then run
// there, between its own events, and may write to its client directly.
func (r *Relay) Attach(fd int, sink Sink, poller int) *Conn {
	p := r.pick(poller)
	SetUserTimeout(fd, r.cfg.WriteTimeout)
	return &Conn{fd: fd, p: p, sink: sink}
}

// pick is poller i, or the next in turn when i is out of range.
func (r *Relay) pick(i int) *Poller {
	if i >= 0 && i < len(r.pollers) {
		return r.pollers[i]
	}
	return r.pollers[int(r.next.Add(1))%len(r.pollers)]
}

// SetUserTimeout sets a TCP socket's TCP_USER_TIMEOUT: unacknowledged data
// older than d makes the kernel drop the connection (a dead peer is found
// even when nothing reads it). d <= 0, or a socket that is not TCP, is left
// alone.
func SetUserTimeout(fd int, d time.Duration) {
	if d > 0 {
		_ = rawSetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(d.Milliseconds()))
	}
}

// Close stops every poller; their sockets are closed and sinks told.
func (r *Relay) Close() {
	for _, p := range r.pollers {
		p.shutdown()
	}
	r.pollers = nil
}
