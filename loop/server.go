//go:build linux

package loop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/consoleproxy/consoleproxy/loop/web"
	"github.com/consoleproxy/consoleproxy/relay"
	"github.com/consoleproxy/consoleproxy/relay/reuse"
	"github.com/consoleproxy/consoleproxy/relay/tokens"
)

// Server is one consoleproxy listener.
type Server struct {
	gnet.BuiltinEventEngine
	cfg     Config
	relay   *relay.Relay
	pool    *pool
	metrics *serverMetrics

	eng      gnet.Engine
	addr     netip.AddrPort
	booted   chan struct{}
	stopped  chan error  // gnet.Run's result
	running  atomic.Bool // from OnBoot until gnet's engine stops
	draining atomic.Bool
	admitted atomic.Int64  // sessions authorizing or relaying (--max-sessions)
	nextID   atomic.Uint64 // the last session ID given (sessions.go)
	limits   *limits       // --max-pending, --max-sessions-per-ip, --auth-failures-per-ip
	web      atomic.Pointer[web.Site]
	tlsWG    sync.WaitGroup // TLS handshake goroutines and VeNCrypt security handshakes
	// spareP says GOMAXPROCS was above the loops at start, so the loops
	// may sleep holding their P (holdP).
	spareP bool
	// offLoop counts work in flight on goroutines other than the loops:
	// worker jobs (lookups, DNS), TLS handshakes, VeNCrypt handshakes
	// (holdP).
	offLoop atomic.Int64
	// handshakes runs wss:// TLS handshakes (tlshs.go).
	handshakes *handshakers
	// plainHead is the plaintext a wss:// session decrypts ahead while
	// its upgrade request is read: the longest request, or a batch.
	plainHead int
	// acceptLog rate-limits the accept-failure warning (a hot path while
	// descriptors are short).
	acceptLog logEvery

	mu       sync.Mutex         // guards sessions
	sessions map[*session]int64 // each with when the sweeper checks it next (sweep.go)
	sweeper  chan struct{}

	// loopPoller is the relay poller each event loop drives (drivePoller).
	loopPoller map[gnet.EventLoop]int
	// storeQuick: the token store never blocks (tokens.NonBlocking), so a
	// lookup needs no deadline. lookupOnLoop: nor does the reuse guard, so
	// a handshake's lookup runs on its loop, not on a worker (authorize).
	storeQuick, lookupOnLoop bool
}

// New checks cfg and prepares a Server; Start runs it.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("loop: no token store")
	}
	cfg = cfg.withDefaults()
	if cfg.Security != nil && cfg.ConsoleType != "novnc" {
		return nil, fmt.Errorf("loop: the RFB security proxy (VeNCrypt) is for novnc consoles, not %s", cfg.ConsoleType)
	}
	// Each event loop drives the relay poller that holds its sessions'
	// host sockets (DECISIONS.md "A session's two sockets on one thread").
	rcfg := cfg.Relay
	rcfg.Driven, rcfg.Pollers = true, cfg.EventLoops
	r, err := relay.New(rcfg)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg, relay: r, metrics: newServerMetrics(),
		loopPoller: map[gnet.EventLoop]int{},
		booted:     make(chan struct{}), stopped: make(chan error, 1),
		sessions: map[*session]int64{}, sweeper: make(chan struct{}),
	}
	_, s.storeQuick = cfg.Store.(tokens.NonBlocking)
	_, guardQuick := cfg.Reuse.(reuse.NonBlocking)
	s.lookupOnLoop = s.storeQuick && guardQuick
	s.limits = newLimits(cfg, s.metrics.set)
	s.pool = newPool(cfg.Workers, cfg.Queue, &s.offLoop)
	s.handshakes = newHandshakers(TLSHandshakers, TLSHandshakeQueue, &s.tlsWG, &s.offLoop)
	s.plainHead = max(maxPeek, cfg.Request.MaxHeaderBytes+1)
	s.metrics.set.NewGauge("consoleproxy_worker_queue_length", func() float64 { return float64(s.QueueLen()) })
	s.metrics.set.NewGauge("consoleproxy_host_handshakes_pending", func() float64 { return float64(s.relay.Opening()) })
	s.metrics.set.NewGauge("consoleproxy_sessions_max", func() float64 { return float64(cfg.MaxSessions) })
	s.metrics.set.NewGauge("consoleproxy_ready", func() float64 { return b2f(s.Ready()) })
	return s, nil
}

// Buffered is the most host data any one session holds for its client
// (read from the host, not yet taken by the client's socket): the quantity
// --max-buffered-bytes bounds.
func (s *Server) Buffered() int64 {
	var most int64
	s.mu.Lock()
	defer s.mu.Unlock()
	for ss := range s.sessions {
		if phase(ss.phase.Load()) == phaseRelaying && ss.host != nil {
			most = max(most, ss.host.Buffered())
		}
	}
	return most
}

// outBound is the most a client's outbound buffer may hold before reading
// its pings pauses: the relay's bound on host data plus controlHeld.
func (s *Server) outBound() int {
	rc := s.relay.Config()
	return int(rc.HighWater) + rc.ReadSize + controlHeld
}

// Observe adds a series read from f at each scrape to the server's
// metrics: for parts wired in beside the server (the fleet reuse guard).
// Call it before Start; a name already taken panics.
func (s *Server) Observe(name string, f func() float64) { s.metrics.set.NewGauge(name, f) }

// SetWeb replaces the static site (nil: plain GETs get 404). Any goroutine.
func (s *Server) SetWeb(site *web.Site) { s.web.Store(site) }

// QueueLen is the number of handshakes waiting for a worker.
func (s *Server) QueueLen() int { return len(s.pool.jobs) }

// Start listens and returns once the listener is up. An address another
// socket holds is an error (ErrAddrInUse), whoever holds it: see listen.go.
func (s *Server) Start() error { return s.start(nil) }

// StartInherited is Start on listening sockets handed over by the process
// before (a binary upgrade, handover.go): nothing is bound and the address
// is not probed, since the sockets listening there are these. The server
// owns fds from the call on.
func (s *Server) StartInherited(fds []int) error {
	if len(fds) == 0 {
		return errors.New("loop: no inherited listener")
	}
	return s.start(fds)
}

func (s *Server) start(inherited []int) error {
	addr, err := s.cfg.Listen, error(nil)
	if len(inherited) == 0 {
		addr, err = probeListen(s.cfg.Listen)
	}
	if err != nil {
		s.pool.stop(context.Background())
		s.relay.Close()
		return fmt.Errorf("listen %s: %w", s.cfg.Listen, err)
	}
	opts := []gnet.Option{gnet.WithMulticore(true), gnet.WithNumEventLoop(s.cfg.EventLoops),
		gnet.WithReusePort(true), gnet.WithReuseAddr(true), gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithLogger(gnetLogger{s.cfg.Logger}), gnet.WithLoopFD(s.drivePoller),
		gnet.WithTCPUserTimeout(max(s.cfg.WriteTimeout, 0))} // the listeners': each client socket inherits it
	if s.spareP = runtime.GOMAXPROCS(0) > s.cfg.EventLoops; s.spareP {
		opts = append(opts, gnet.WithLoopHoldP(s.holdP))
	}
	if len(inherited) > 0 {
		opts = append(opts, gnet.WithListenerFDs(inherited))
	}
	go func() {
		err := gnet.Run(s, "tcp://"+addr, opts...)
		s.running.Store(false)
		s.stopped <- err
	}()
	select {
	case <-s.booted:
	case err := <-s.stopped:
		s.pool.stop(context.Background())
		s.relay.Close()
		return fmt.Errorf("listen %s: %w", s.cfg.Listen, err)
	}
	go s.sweep()
	if s.cfg.TLS != nil {
		ktlsLog.Do(func() { logKernelTLS(s.cfg.Logger) })
	}
	return nil
}

// holdP tells an event loop about to sleep whether it may keep its P (the
// Go scheduler's processor) while it waits (gnet's LoopHoldP): yes while no
// work is in flight on other goroutines. A loop that sleeps in a system
// call gets its P retaken by sysmon once the wait outlasts one of its
// ticks, and each retake puts sysmon back to 20 µs naps: thousands of
// wake-ups a second on the loops' cores at light load (DECISIONS.md "A
// sleeping loop keeps its P"). Asked only with a P spare beside the loops
// (spareP: GOMAXPROCS above EventLoops, as cmd/consoleproxy sets it), on
// which Go's netpoller, timers, the sweeper, the admin and metrics servers
// and the garbage collector's workers run meanwhile; not while a lookup,
// DNS or a TLS handshake is in flight, which may want more than one.
func (s *Server) holdP() bool { return s.offLoop.Load() == 0 }

// drivePoller gives event loop el the relay poller it drives: its epoll
// descriptor joins the loop's, and the loop polls it when readable (gnet's
// LoopFD, before the loops start: loopPoller is read-only once they run).
func (s *Server) drivePoller(el gnet.EventLoop, idx int) (int, func(), error) {
	p, err := s.relay.Poller(idx)
	if err != nil {
		return -1, nil, err
	}
	s.loopPoller[el] = idx
	return p.Fd(), p.Poll, nil
}

// Addr is the listener's address (useful with port 0).
func (s *Server) Addr() netip.AddrPort { return s.addr }

// Ready reports whether the server takes new sessions: false while
// draining, and false once gnet's engine has stopped (the port no longer
// listens), whatever stopped it.
func (s *Server) Ready() bool { return !s.draining.Load() && s.running.Load() }

// Pending is the number of connections in the upgrade or the TLS handshake
// (--max-pending).
func (s *Server) Pending() int64 { return s.limits.pending.Load() }

// Active is the number of sessions relaying.
func (s *Server) Active() int64 { return s.metrics.active.Load() }

// WriteMetrics writes the Prometheus text exposition.
func (s *Server) WriteMetrics(w io.Writer) { s.metrics.WritePrometheus(w) }

// StopGrace bounds Shutdown's teardown once the drain has ended (every
// session gone, or ctx done): stopping gnet's engine (it polls its loops
// every 500 ms; about 1.7 s measured, DECISIONS.md), TLS goroutines still
// in a handshake, and workers still in a token lookup or a dial. Whatever
// still runs after it is abandoned with a warning, so Shutdown returns at
// most StopGrace after ctx's deadline, whatever is blocked.
const StopGrace = 3 * time.Second

// Shutdown drains: new connections are refused, every session gets close
// 1001, and once they are gone (or ctx ends) the listener and the pollers
// stop, within StopGrace. A worker still blocked then is abandoned (logged,
// not an error): the drain itself is what the error reports.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.draining.Swap(true) {
		return errors.New("loop: already shut down")
	}
	for _, ss := range s.snapshot() {
		ss.end(EndShutdown)
	}
	left := s.awaitSessionsGone(ctx)
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), StopGrace)
	defer cancel()
	close(s.sweeper)
	stopped, err := s.stopEngine(tctx)
	if !waitGroup(tctx, &s.tlsWG) {
		s.cfg.Logger.Warn("shutdown: TLS or VeNCrypt handshakes still running after the grace; abandoned", "grace", StopGrace.String())
	}
	idle := s.pool.stop(tctx)
	if !idle {
		s.cfg.Logger.Warn("shutdown: workers still in a token lookup or dial after the grace; abandoned", "grace", StopGrace.String())
	}
	if stopped && idle {
		s.relay.Close() // else the relay stays open for whoever may still call it
	}
	if err == nil && left > 0 {
		err = fmt.Errorf("drain: %d sessions left: %w", left, ctx.Err())
	}
	return err
}

// drainPoll is how often a drain looks at the session count: sessions end
// on their loops, which do not signal the last one's end.
const drainPoll = 20 * time.Millisecond

// awaitSessionsGone waits until no session is left or ctx ends, and
// returns how many are left.
func (s *Server) awaitSessionsGone(ctx context.Context) int {
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for s.count() > 0 && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	return s.count()
}

// stopEngine stops gnet's engine and waits for gnet.Run to return, until
// ctx ends; stopped says whether it returned. An engine that had already
// stopped on its own is an error.
func (s *Server) stopEngine(ctx context.Context) (stopped bool, err error) {
	running := s.running.Load()
	stopErr := s.eng.Stop(ctx)
	select {
	case runErr := <-s.stopped:
		if !running {
			return true, fmt.Errorf("loop: the listener had stopped before the shutdown: %v", runErr)
		}
		return true, nil
	case <-ctx.Done():
		s.cfg.Logger.Warn("shutdown: gnet's engine did not stop within the grace; abandoned", "grace", StopGrace.String())
		return false, fmt.Errorf("loop: stopping the listener: %w", errors.Join(stopErr, ctx.Err()))
	}
}

// waitGroup waits for wg or ctx, whichever comes first; false means ctx
// ended first.
func waitGroup(ctx context.Context, wg *sync.WaitGroup) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *Server) snapshot() []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*session, 0, len(s.sessions))
	for ss := range s.sessions {
		out = append(out, ss)
	}
	return out
}

func (s *Server) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// OnBoot records the engine and the bound address.
func (s *Server) OnBoot(eng gnet.Engine) gnet.Action {
	s.eng = eng
	s.running.Store(true)
	if fd, err := eng.Dup(); err == nil {
		if sa, err := unix.Getsockname(fd); err == nil {
			s.addr = sockaddrToAddrPort(sa)
		}
		unix.Close(fd)
	}
	close(s.booted)
	return gnet.None
}

// OnShutdown runs when gnet's engine stops, by Shutdown or on its own (gnet
// logs why): from here Ready is false.
func (s *Server) OnShutdown(gnet.Engine) {
	if s.running.Swap(false) && !s.draining.Load() {
		s.cfg.Logger.Error("listener stopped: not ready", "listen", s.cfg.Listen)
	}
}

// OnOpen starts a session in the handshaking state, holding a --max-pending
// slot until its upgrade request is read (a wss:// one through its TLS
// handshake). Past --max-pending the connection is closed at once.
func (s *Server) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	if s.draining.Load() {
		s.metrics.results[ResultShuttingDown].Inc()
		return nil, gnet.Close
	}
	if !s.limits.enterPending() {
		s.metrics.results[ResultPendingLimit].Inc()
		s.limits.refusedAtAccept(s.cfg.Logger, s.cfg.Now())
		return nil, gnet.Close
	}
	ss := newSession(s, c)
	ss.lim.pending = true
	c.SetContext(ss)
	s.mu.Lock()
	s.sessions[ss] = 0
	s.mu.Unlock()
	return nil, gnet.None
}

// OnTraffic hands the client's bytes to its session.
func (s *Server) OnTraffic(c gnet.Conn) gnet.Action {
	ss, _ := c.Context().(*session)
	if ss == nil {
		return gnet.Close
	}
	return ss.onTraffic()
}

// OnOutboundDrained runs when a client's outbound buffer, after holding
// bytes its socket could not take at once, is empty again (gnet patch):
// a session waiting to close closes, and reading paused for the client's
// own backlog resumes.
func (s *Server) OnOutboundDrained(c gnet.Conn) gnet.Action {
	ss, _ := c.Context().(*session)
	if ss == nil || phase(ss.phase.Load()) != phaseRelaying {
		return gnet.None
	}
	ss.holdSince.Store(0)
	if ss.drainClose.Load() {
		return gnet.Close
	}
	if ss.outFull {
		ss.outFull = false
		return ss.updateRead()
	}
	return gnet.None
}

// OnAcceptError counts connections shed because the process ran out of
// descriptors (gnet patch: the listener stays up and backs off).
func (s *Server) OnAcceptError(err error, shed int) {
	s.metrics.acceptErrors.Inc()
	s.metrics.shed.Add(shed)
	s.acceptLog.Do(func() {
		s.cfg.Logger.Warn("accept failed: out of descriptors or memory; shedding waiting connections and backing off",
			"err", err.Error(), "shed", shed)
	})
}

// OnClose ends the session's accounting.
func (s *Server) OnClose(c gnet.Conn, _ error) gnet.Action {
	ss, _ := c.Context().(*session)
	if ss == nil {
		return gnet.None
	}
	ss.onClose()
	ss.leavePending()
	s.mu.Lock()
	delete(s.sessions, ss)
	s.mu.Unlock()
	return gnet.None
}

// logEvery runs a logging function at most once per minute.
type logEvery struct{ last atomic.Int64 }

func (l *logEvery) Do(f func()) {
	now, last := time.Now().UnixNano(), l.last.Load()
	if last != 0 && now-last < int64(time.Minute) {
		return
	}
	if l.last.CompareAndSwap(last, now) {
		f()
	}
}

func sockaddrToAddrPort(sa unix.Sockaddr) netip.AddrPort {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port))
	}
	return netip.AddrPort{}
}

func peerAddr(c gnet.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		if a, ok := netip.AddrFromSlice(ta.IP); ok {
			return a.Unmap()
		}
	}
	return netip.Addr{}
}

// gnetLogger sends gnet's warnings and errors to slog and drops the rest.
// gnet's messages carry file descriptors and addresses, never payloads.
type gnetLogger struct{ l *slog.Logger }

func (gnetLogger) Debugf(string, ...any) {}
func (gnetLogger) Infof(string, ...any)  {}
func (g gnetLogger) Warnf(f string, a ...any) {
	g.l.Warn("gnet", "msg", fmt.Sprintf(f, a...))
}
func (g gnetLogger) Errorf(f string, a ...any) {
	g.l.Error("gnet", "msg", fmt.Sprintf(f, a...))
}
func (g gnetLogger) Fatalf(f string, a ...any) {
	g.l.Error("gnet fatal", "msg", fmt.Sprintf(f, a...))
}

// HeldUp is the most client bytes any one session holds toward its compute
// host (read from the client, not yet taken by the host's socket).
func (s *Server) HeldUp() int64 {
	var most int64
	s.mu.Lock()
	defer s.mu.Unlock()
	for ss := range s.sessions {
		most = max(most, ss.heldUp.Load())
	}
	return most
}
