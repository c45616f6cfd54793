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
// ping, token expiry, close-after-drain). One goroutine checks every session
// this often with atomics only: at 10,000 sessions a sweep costs well under
// a millisecond, which is cheaper than a timer per session.
const sweepEvery = 100 * time.Millisecond

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
		s.mu.Lock()
		for ss := range s.sessions {
			ss.check(now)
		}
		s.mu.Unlock()
		if mem.due(s.nextID.Load(), time.Now()) {
			debug.FreeOSMemory() // a collection, and the free pages back to the OS
		}
	}
}

// check applies the session's timers. It must not block: it only queues
// work on the session's loop. Sweeper goroutine.
func (ss *session) check(now time.Time) {
	cfg := &ss.srv.cfg
	switch phase(ss.phase.Load()) {
	case phaseHandshake:
		if now.UnixNano()-ss.accepted > int64(cfg.HandshakeTimeout) && !ss.timedOut.Swap(true) {
			_ = ss.raw.Close()
		}
	case phaseRelaying:
		nanos := now.UnixNano()
		if ss.checkStall(nanos) || ss.drainClose.Load() {
			return // closing: OnOutboundDrained or the write timeout ends it
		}
		switch {
		case cfg.IdleTimeout > 0 && nanos-ss.lastData.Load() > int64(cfg.IdleTimeout):
			ss.end(EndIdleTimeout)
		case ss.expires.Load() > 0 && now.Unix() >= ss.expires.Load():
			ss.end(EndSessionExpired)
		case cfg.PingInterval > 0 && nanos-ss.clientSeen.Load() > 2*int64(cfg.PingInterval):
			ss.end(EndPingTimeout)
		case cfg.PingInterval > 0 && nanos-ss.lastPing.Load() >= int64(cfg.PingInterval):
			ss.lastPing.Store(nanos)
			_ = ss.c.AsyncWrite(wsframe.PingFrame, nil)
		}
		if ss.tls != nil && nanos-ss.clientSeen.Load() > int64(tlsIdleTrim) {
			ss.tls.idle()
		}
	}
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
