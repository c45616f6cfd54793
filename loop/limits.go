package loop

import (
	"hash/maphash"
	"log/slog"
	"math"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// The limits of issue 12 on what the internet can hold before it is a
// session: --max-pending (connections in the upgrade or the TLS handshake),
// --max-sessions-per-ip and --auth-failures-per-ip. --max-sessions itself is
// admit/unadmit in session.go; its default is SessionsForFDs.

const (
	// FDReserve is what --max-sessions' default leaves of the open-file
	// limit for everything that is not a session: the listeners (one per
	// event loop), the epoll and eventfd descriptors of the gnet loops and
	// the relay pollers, the token and reuse stores' connections or files,
	// the metrics and admin listeners and their clients, standard streams,
	// and connections still in the upgrade (which hold one descriptor each
	// and are bounded by --max-pending, not by this reserve).
	FDReserve = 256
	// FDsPerSession is the descriptors a session holds: the client's
	// socket and the compute host's, wss:// or VeNCrypt or neither (TLS
	// runs on the event loop toward the client, on the relay pollers toward
	// the host). A session in the VeNCrypt handshake holds one more for its
	// duration (rfb.Secure's net.Conn).
	FDsPerSession = 2

	// limitShards is the number of independently locked parts of each
	// per-address table, so handshakes on different loops rarely meet.
	limitShards = 64
	// AuthFailureAddresses caps the addresses --auth-failures-per-ip tracks
	// in one window (about 80 bytes each with the maps' overhead: 5.0 MiB
	// measured at the cap, IPv6 addresses), split evenly over the shards
	// (1,024 each; the hash seed is random, so no one can aim at one). Past it
	// a new address is not tracked, so it is not limited that minute: the
	// table fails open, because failing closed would let anyone with many
	// addresses lock every new address out (a whole office behind one NAT
	// among them), while the lookups of untracked addresses stay bounded by
	// the worker pool (--workers, --worker-queue: 503 past it). Counted in
	// consoleproxy_auth_attempts_untracked_total.
	AuthFailureAddresses = 1 << 16
	// authFailureWindow is --auth-failures-per-ip's fixed window: a locked
	// address is refused until the wall-clock minute ends.
	authFailureWindow = time.Minute
	// pendingLogEvery spaces the log lines about connections closed at
	// accept: a slowloris flood would otherwise write one per connection.
	pendingLogEvery = 10 * time.Second
)

// SessionsForFDs is --max-sessions' default for a process that may open
// nofile descriptors: (nofile − FDReserve) / FDsPerSession, at least 1.
func SessionsForFDs(nofile uint64) int {
	if nofile < FDReserve+FDsPerSession {
		return 1
	}
	return int(min((nofile-FDReserve)/FDsPerSession, math.MaxInt32))
}

// limits are the server-wide counters behind the limits. Any goroutine.
type limits struct {
	maxPending  int64 // <= 0: no cap
	pending     atomic.Int64
	refused     atomic.Int64 // connections closed at accept since the last log line
	nextLog     atomic.Int64 // unix nanos before which no pending-limit line is logged
	perIP       *addrCounts  // nil: --max-sessions-per-ip off
	maxPerIP    int32
	authFails   *failWindow // nil: --auth-failures-per-ip off
	maxAuthFail uint32
}

// newLimits builds the limits of cfg (defaults applied) and adds their
// series to set.
func newLimits(cfg Config, set *metrics.Set) *limits {
	l := &limits{maxPending: int64(cfg.MaxPending)}
	set.NewGauge("consoleproxy_connections_pending", func() float64 { return float64(l.pending.Load()) })
	if cfg.MaxSessionsPerIP > 0 {
		l.perIP, l.maxPerIP = newAddrCounts(), int32(min(cfg.MaxSessionsPerIP, math.MaxInt32))
		set.NewGauge("consoleproxy_per_ip_addresses", func() float64 { return float64(l.perIP.addresses()) })
	}
	if cfg.AuthFailuresPerIP > 0 {
		l.authFails = newFailWindow(AuthFailureAddresses, set.NewCounter("consoleproxy_auth_attempts_untracked_total"))
		l.maxAuthFail = uint32(min(cfg.AuthFailuresPerIP, math.MaxUint32))
		set.NewGauge("consoleproxy_auth_failure_addresses", func() float64 { return float64(l.authFails.addresses(cfg.Now())) })
	}
	return l
}

// enterPending takes a --max-pending slot; false means none is free.
func (l *limits) enterPending() bool {
	n := l.pending.Add(1)
	if l.maxPending > 0 && n > l.maxPending {
		l.pending.Add(-1)
		return false
	}
	return true
}

func (l *limits) leavePending() { l.pending.Add(-1) }

// refusedAtAccept counts a connection closed at accept and logs, at most
// once per pendingLogEvery, how many were since the last line.
func (l *limits) refusedAtAccept(log *slog.Logger, now time.Time) {
	l.refused.Add(1)
	next := l.nextLog.Load()
	if now.UnixNano() < next || !l.nextLog.CompareAndSwap(next, now.Add(pendingLogEvery).UnixNano()) {
		return
	}
	log.Warn("max pending connections reached: new connections are closed at accept",
		"max_pending", l.maxPending, "closed", l.refused.Swap(0))
}

// authTicket is one attempt counted against --auth-failures-per-ip from
// before its lookup until its outcome: kept when the token is refused,
// given back otherwise. Counting attempts first, not failures afterwards,
// means a burst of lookups from one address stops at N in flight instead of
// passing the check together. An attempt counts in the minute it started.
type authTicket struct {
	addr   netip.Addr
	window int64
	held   bool // counted in the table (false: limit off, or untracked)
}

// authAttempt counts an attempt from addr; false means addr has used up
// its refused tokens this minute (429 before any lookup). Any goroutine.
func (l *limits) authAttempt(addr netip.Addr, now time.Time) (authTicket, bool) {
	if l.authFails == nil {
		return authTicket{}, true
	}
	return l.authFails.reserve(addr, now, l.maxAuthFail)
}

// authSettle keeps the attempt as a failure when r is a refused token and
// gives it back otherwise. Once per ticket; any goroutine.
func (l *limits) authSettle(t authTicket, r Result) {
	if t.held && r != ResultAuthFailed {
		l.authFails.refund(t)
	}
}

// sessionLimits is what a session holds of the limits, all for its client
// address (ss.client, fixed once admission() has run). Loop only; 16 bytes.
type sessionLimits struct {
	authWindow int64 // the minute its token attempt counts in
	authHeld   bool  // a counted token attempt, until a refusal or the worker settles it
	pending    bool  // a --max-pending slot
	holdsIP    bool  // a --max-sessions-per-ip count
}

// leavePending gives the session's --max-pending slot back, once. Runs on
// the loop.
func (ss *session) leavePending() {
	if ss.lim.pending {
		ss.lim.pending = false
		ss.srv.limits.leavePending()
	}
}

// authAttempt counts the session's token attempt against its client
// address; false means the address is locked out this minute. Runs on the
// loop.
func (ss *session) authAttempt() bool {
	t, ok := ss.srv.limits.authAttempt(ss.client, ss.srv.cfg.Now())
	ss.lim.authWindow, ss.lim.authHeld = t.window, t.held
	return ok
}

// handAuth gives the session's token attempt to the worker that settles
// it. Runs on the loop.
func (ss *session) handAuth() authTicket {
	t := authTicket{addr: ss.client, window: ss.lim.authWindow, held: ss.lim.authHeld}
	ss.lim.authHeld = false
	return t
}

// settleAuth settles the session's token attempt with r, if it still holds
// it (the worker settles the ones it was handed). Runs on the loop.
func (ss *session) settleAuth(r Result) { ss.srv.limits.authSettle(ss.handAuth(), r) }

// enterIP counts the session against --max-sessions-per-ip for its client
// address; false means that address is at the cap. Runs on the loop.
func (ss *session) enterIP() bool {
	l := ss.srv.limits
	if l.perIP == nil {
		return true
	}
	ss.lim.holdsIP = l.perIP.enter(ss.client, l.maxPerIP)
	return ss.lim.holdsIP
}

// leaveIP gives the per-address count back, once (unadmit calls it).
// Runs on the loop.
func (ss *session) leaveIP() {
	if ss.lim.holdsIP {
		ss.lim.holdsIP = false
		ss.srv.limits.perIP.leave(ss.client)
	}
}

// addrCounts counts live sessions per address in sharded maps; an address
// whose count drops to zero is deleted, so the maps hold only addresses
// with a session. Any goroutine.
type addrCounts struct {
	seed   maphash.Seed
	shards [limitShards]countShard
}

type countShard struct {
	mu sync.Mutex
	m  map[netip.Addr]int32
}

func newAddrCounts() *addrCounts {
	a := &addrCounts{seed: maphash.MakeSeed()}
	for i := range a.shards {
		a.shards[i].m = map[netip.Addr]int32{}
	}
	return a
}

func (a *addrCounts) shard(addr netip.Addr) *countShard {
	return &a.shards[maphash.Comparable(a.seed, addr)%limitShards]
}

// enter adds one for addr unless it already has max.
func (a *addrCounts) enter(addr netip.Addr, max int32) bool {
	s := a.shard(addr)
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.m[addr]
	if n >= max {
		return false
	}
	s.m[addr] = n + 1
	return true
}

// leave takes one off addr's count, deleting it at zero.
func (a *addrCounts) leave(addr netip.Addr) {
	s := a.shard(addr)
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.m[addr] - 1; n > 0 {
		s.m[addr] = n
	} else {
		delete(s.m, addr)
	}
}

// addresses is the number of addresses with a live session.
func (a *addrCounts) addresses() int {
	n := 0
	for i := range a.shards {
		s := &a.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// failWindow counts token attempts per address (in flight or refused) in
// fixed one-minute windows: each shard's map is emptied when the first
// access of a new minute reaches it. At most capacity addresses are tracked
// per window. Any goroutine.
type failWindow struct {
	seed      maphash.Seed
	perShard  int
	untracked *metrics.Counter // attempts of addresses the full table could not take
	shards    [limitShards]failShard
}

type failShard struct {
	mu     sync.Mutex
	window int64 // the minute m counts (unix seconds / 60)
	m      map[netip.Addr]uint32
}

func newFailWindow(capacity int, untracked *metrics.Counter) *failWindow {
	f := &failWindow{seed: maphash.MakeSeed(), perShard: max(1, capacity/limitShards), untracked: untracked}
	for i := range f.shards {
		f.shards[i].m = map[netip.Addr]uint32{}
	}
	return f
}

// lockAt locks addr's shard, emptied first if its window is over.
func (f *failWindow) lockAt(addr netip.Addr, now time.Time) *failShard {
	s := &f.shards[maphash.Comparable(f.seed, addr)%limitShards]
	s.mu.Lock()
	s.roll(now)
	return s
}

func (s *failShard) roll(now time.Time) {
	w := now.Unix() / int64(authFailureWindow/time.Second)
	if w == s.window {
		return
	}
	s.window = w
	if len(s.m) > 256 {
		s.m = map[netip.Addr]uint32{} // let a flood's buckets go
	} else {
		clear(s.m)
	}
}

// reserve counts an attempt from addr unless it already has max.
func (f *failWindow) reserve(addr netip.Addr, now time.Time, max uint32) (authTicket, bool) {
	s := f.lockAt(addr, now)
	defer s.mu.Unlock()
	t := authTicket{addr: addr, window: s.window}
	n, ok := s.m[addr]
	switch {
	case n >= max:
		return t, false
	case ok || len(s.m) < f.perShard:
		s.m[addr], t.held = n+1, true
	default:
		f.untracked.Inc()
	}
	return t, true
}

// refund gives back an attempt of the window still current (a cleared one
// has nothing to give back); an address at zero leaves the table.
func (f *failWindow) refund(t authTicket) {
	s := &f.shards[maphash.Comparable(f.seed, t.addr)%limitShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.window != t.window {
		return
	}
	if n := s.m[t.addr]; n > 1 {
		s.m[t.addr] = n - 1
	} else {
		delete(s.m, t.addr)
	}
}

// addresses is the number of addresses with refused tokens this window.
func (f *failWindow) addresses(now time.Time) int {
	n := 0
	for i := range f.shards {
		s := &f.shards[i]
		s.mu.Lock()
		s.roll(now)
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}
