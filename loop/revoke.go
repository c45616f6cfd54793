//go:build linux

package loop

import (
	"context"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/consoleproxy/consoleproxy/relay/reuse"
)

// Ending sessions by token: a revocation (DELETE /v1/tokens/{token_hash},
// here or on any proxy sharing the --reuse-store) and --token-reuse
// takeover. The reuse guard calls a session's endByGuard (given to Acquire
// with the claim); EndToken finds the sessions itself.

// Revoke ends the token k everywhere the reuse guard reaches and refuses it
// from then on: this proxy's sessions (those still authorizing included,
// refused before any connect) and, with a fleet guard, every proxy's
// sharing its store. The admin API's DELETE /v1/tokens/{token_hash} calls
// it once the record is gone. An error means the fleet may not have heard
// (this proxy's sessions are ended all the same).
func (s *Server) Revoke(ctx context.Context, k reuse.Key) error {
	s.EndToken(k)
	return s.cfg.Reuse.Revoke(ctx, k)
}

// EndToken ends this proxy's sessions of the token k with close 1008
// (revoked), each on its own event loop: a relaying session gets its close
// frame; one still authorizing is refused with 403 (no 101, and no connect
// to the compute host unless one had started). It returns how many sessions it told to end. Any goroutine.
func (s *Server) EndToken(k reuse.Key) int {
	n := 0
	for _, ss := range s.snapshot() {
		if t := ss.tokenKey.Load(); t != nil && *t == k {
			ss.endByGuard(reuse.Revoked)
			n++
		}
	}
	return n
}

// endOfReason is the session end of a guard's reason.
func endOfReason(r reuse.Reason) End {
	if r == reuse.TakenOver {
		return EndTakenOver
	}
	return EndRevoked
}

// endByGuard ends the session for r. The reason is recorded first: a
// session still authorizing is refused with 403 by its worker before any
// connect, or by authorized on its loop (no 101); then, on the loop (where
// authorized runs, so one of the two always sees the other), a relaying
// session ends with 1008. Any goroutine; never blocks.
func (ss *session) endByGuard(r reuse.Reason) {
	e := endOfReason(r)
	if !ss.guardEnd.CompareAndSwap(nil, &e) {
		return // already ended by the guard
	}
	_ = ss.raw.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		if phase(ss.phase.Load()) == phaseRelaying {
			ss.end(e)
			time.AfterFunc(EndGrace, ss.closeIfOpen) // a client that takes nothing (sessions.go)
		}
		return nil
	}))
	// An error means the engine is stopping: every session ends anyway.
}

// guardRefusal is the refusal of a session the guard ended while it was
// authorizing.
func guardRefusal(e End) (Result, string) {
	if e == EndTakenOver {
		return ResultTokenInUse, "token taken over by a newer session"
	}
	return ResultAuthFailed, "token revoked"
}
