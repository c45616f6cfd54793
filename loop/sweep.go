//go:build linux

package loop

import (
	"context"
	"runtime/debug"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/consoleproxy/consoleproxy/wsframe"
)

// sweepEvery is the resolution of every session timer (handshake, idle,
// ping, token expiry, close-after-drain). One goroutine checks the sessions
// this often with atomics only, which is cheaper than a timer per session.
const sweepEvery = 100 * time.Millisecond

// sweepStep is the longest a relaying session goes unchecked. Every
// deadline it holds (idle, ping, ping timeout, token expiry, TLS trim) is
// known when it is checked, and traffic only moves them later, so the next
// check is at the earliest of them; what can start between checks is a
// stall, whose sampling begins --write-timeout/2 after it starts, so the
// step is at most that too. A check reads the session's memory, a cache
// miss for a quiet session: at 9,000 sessions, checking each every sweep
// was 2.5 % of the proxy's CPU (perf, mixed).
const sweepStep = time.Second

func (s *Server) sweep() {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	var mem memRelease
	for {
		select {
		case <-s.sweeper:
			return
		case <-t.C:
		}
		now := s.cfg.Now()
		nanos := now.UnixNano()
		s.mu.Lock()
		for ss, next := range s.sessions {
			if next > nanos {
				continue
			}
			if n := ss.check(now); n != next {
				s.sessions[ss] = n // a handshaking session stays at 0: no write
			}
		}
		s.mu.Unlock()
		if mem.due(s.nextID.Load(), time.Now()) {
			debug.FreeOSMemory() // a collection, and the free pages back to the OS
		}
	}
}

// check applies the session's timers and says when it needs checking next
// (Unix nanoseconds; 0: at the next sweep). It must not block: it only
// queues work on the session's loop. Sweeper goroutine.
func (ss *session) check(now time.Time) (next int64) {
	cfg := &ss.srv.cfg
	switch phase(ss.phase.Load()) {
	case phaseHandshake:
		if now.UnixNano()-ss.accepted > int64(cfg.HandshakeTimeout) && !ss.timedOut.Swap(true) {
			_ = ss.raw.Close()
		}
	case phaseRelaying:
		nanos := now.UnixNano()
		if ss.checkStall(nanos) || ss.drainClose.Load() {
			return 0 // closing: OnOutboundDrained or the write timeout ends it
		}
		switch {
		case cfg.IdleTimeout > 0 && nanos-ss.lastData.Load() > int64(cfg.IdleTimeout):
			ss.end(EndIdleTimeout)
			return 0
		case ss.expires.Load() > 0 && now.Unix() >= ss.expires.Load():
			ss.end(EndSessionExpired)
			return 0
		case cfg.PingInterval > 0 && nanos-ss.clientSeen.Load() > 2*int64(cfg.PingInterval):
			ss.end(EndPingTimeout)
			return 0
		case cfg.PingInterval > 0 && nanos-ss.lastPing.Load() >= int64(cfg.PingInterval):
			ss.lastPing.Store(nanos)
			_ = ss.c.AsyncWrite(wsframe.PingFrame, nil)
		}
		if ss.tls != nil && nanos-ss.clientSeen.Load() > int64(tlsIdleTrim) {
			ss.tls.idle()
		}
		return ss.nextCheck(nanos)
	}
	return 0
}

// nextCheck is when a relaying session checked at nanos needs its next
// check (sweepStep): the earliest deadline it holds, or 0 while a stall is
// sampled (every sweep, until the write timeout ends it or it moves).
func (ss *session) nextCheck(nanos int64) int64 {
	cfg := &ss.srv.cfg
	next := nanos + int64(sweepStep)
	if wt := int64(cfg.WriteTimeout); wt > 0 {
		if since := ss.holdSince.Load(); since != 0 {
			if nanos-since > wt/2 {
				return 0
			}
			next = min(next, since+wt/2+1)
		}
		next = min(next, nanos+wt/2) // a stall that starts after this check
	}
	var due [5]int64 // 0: no such deadline
	if cfg.IdleTimeout > 0 {
		due[0] = ss.lastData.Load() + int64(cfg.IdleTimeout) + 1
	}
	if e := ss.expires.Load(); e > 0 && e <= next/int64(time.Second) {
		due[1] = e * int64(time.Second) // Unix seconds; only one before the step matters (and a far one would overflow)
	}
	seen := ss.clientSeen.Load()
	if pi := int64(cfg.PingInterval); pi > 0 {
		due[2] = seen + 2*pi + 1
		due[3] = ss.lastPing.Load() + pi
	}
	if ss.tls != nil {
		due[4] = seen + int64(tlsIdleTrim) + 1 // once past, trimmed already
	}
	for _, at := range due {
		if at > nanos && at < next {
			next = at
		}
	}
	return next
}

// checkStall applies --write-timeout to the client: a session that has
// held bytes for it with no taker for half the timeout is sampled again on
// its loop, and closed there if the whole timeout passed. It reports
// whether the session is past the timeout. Sweeper goroutine.
func (ss *session) checkStall(nanos int64) bool {
	wt := int64(ss.srv.cfg.WriteTimeout)
	since := ss.holdSince.Load()
	if wt <= 0 || since == 0 || nanos-since <= wt/2 {
		return false
	}
	_ = ss.c.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		if phase(ss.phase.Load()) != phaseRelaying {
			return nil
		}
		ss.sampleOut()
		if h := ss.holdSince.Load(); h != 0 && ss.srv.cfg.Now().UnixNano()-h > wt {
			ss.stall()
		}
		return nil
	}))
	return nanos-since > wt
}
