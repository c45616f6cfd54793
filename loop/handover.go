//go:build linux

package loop

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// A binary upgrade (SIGUSR2, cmd/consoleproxy/upgrade.go) hands the
// listening sockets to a new process: ListenerFDs gives them, the new
// process starts on them with StartInherited, and once it serves, the old
// one calls Handover. Both processes accept from the same sockets (the same
// accept queues) until the old one stops watching them, so a connection
// that reached the listener is accepted by one or the other, never refused.

// HandoverCloseGrace is how long, after --drain-timeout, the sessions an
// old process still holds have to take their close frame (1001) before
// Handover stops the listener: a close frame queued behind data for a slow
// client. Past it Shutdown's StopGrace teardown follows.
const HandoverCloseGrace = 2 * time.Second

// ListenerFDs duplicates the server's listening sockets (one per event
// loop) for the next process: StartInherited's argument there. The caller
// owns and closes them.
func (s *Server) ListenerFDs() ([]int, error) {
	if !s.running.Load() {
		return nil, errors.New("loop: not listening")
	}
	return s.eng.ListenerFDs()
}

// Handover is the old process's drain after a binary upgrade:
// StopAccepting, then DrainHandedOver.
func (s *Server) Handover(ctx context.Context) error {
	s.StopAccepting()
	return s.DrainHandedOver(ctx)
}

// StopAccepting stops accepting for good. The listening sockets stay open
// (shared with the new process, which accepts what waits in their queues)
// and the sessions here go on, those still in their handshake included.
// Bounded by StopGrace; on failure the server still accepts (logged), and
// what it accepts is drained as the rest is.
func (s *Server) StopAccepting() {
	ctx, cancel := context.WithTimeout(context.Background(), StopGrace)
	defer cancel()
	if err := s.eng.StopAccepting(ctx); err != nil {
		s.cfg.Logger.Warn("hand-over: stopping accepting failed", "err", err.Error())
	}
}

// Unrelayed is the number of sessions not relaying yet: in their upgrade
// request, token lookup or connect.
func (s *Server) Unrelayed() int {
	n := 0
	s.mu.Lock()
	defer s.mu.Unlock()
	for ss := range s.sessions {
		if phase(ss.phase.Load()) < phaseRelaying {
			n++
		}
	}
	return n
}

// DrainHandedOver lets the sessions run on until they end or ctx ends
// (--drain-timeout), then ends the rest with close 1001 as Shutdown does,
// within HandoverCloseGrace, and stops.
func (s *Server) DrainHandedOver(ctx context.Context) error {
	left := s.awaitSessionsGone(ctx)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), HandoverCloseGrace)
	defer cancel()
	if err := s.Shutdown(cctx); err != nil {
		return fmt.Errorf("hand-over: %d sessions at --drain-timeout: %w", left, err)
	}
	if left > 0 {
		s.cfg.Logger.Info("hand-over: sessions left at --drain-timeout ended with 1001", "sessions", left)
	}
	return nil
}
