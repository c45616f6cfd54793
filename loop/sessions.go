//go:build linux

package loop

import (
	"cmp"
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// EndAdmin is the end of a session the operator ended (the admin API's
// DELETE /v1/sessions/{id}): close 1008, policy violation, as for a token
// that may no longer be used.
const EndAdmin End = "ended_by_admin"

// EndGrace bounds how long a session EndSession ended may stay open while
// its close frame waits behind bytes its client does not take (the
// contract: it ends within 2 s). Past it the connection is closed without
// the frame, as for a client past --write-timeout.
const EndGrace = 2 * time.Second

// SessionInfo describes one live session for the admin API
// (GET /v1/sessions). It holds no token and no token hash.
type SessionInfo struct {
	ID           uint64     // unique in this process; EndSession takes it
	InstanceUUID string     // the token record's instance
	ConsoleType  string     // the token record's console type
	Peer         netip.Addr // the client's address (the forwarded one from a trusted proxy)
	Host         string     // the compute host, as the record names it
	Port         int
	Started      time.Time // when the client connected
	// Payload bytes relayed so far each way; they move while the session
	// lives.
	BytesClientToHost, BytesHostToClient int64
}

// Sessions lists the sessions relaying now (after their 101, before their
// end), by ID. Any goroutine.
//
// A session's record, client address and accept time are written on its
// loop before its phase turns relaying and never after, so reading them
// once phaseRelaying is seen (an atomic load) is safe.
//
// The server's lock is held only to copy the session pointers (the event
// loops take it at every accept and close), not while the list is built.
func (s *Server) Sessions() []SessionInfo {
	all := s.snapshot()
	out := make([]SessionInfo, 0, len(all))
	for _, ss := range all {
		if phase(ss.phase.Load()) != phaseRelaying {
			continue
		}
		out = append(out, SessionInfo{
			// A relaying session's record has this listener's console type
			// (authorize refuses any other).
			ID: ss.id, InstanceUUID: ss.rec.instance, ConsoleType: s.cfg.ConsoleType, Peer: ss.client,
			Host: ss.rec.host, Port: ss.rec.port, Started: time.Unix(0, ss.accepted),
			BytesClientToHost: ss.up.Load(), BytesHostToClient: ss.down.Load(),
		})
	}
	slices.SortFunc(out, func(a, b SessionInfo) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// EndSession ends the relaying session id with close 1008 (EndAdmin) and
// reports whether there was one. The close frame is queued on the
// session's event loop behind what is already queued for the client, and
// the compute host is closed, as for a shutdown (end); a client that has
// not taken it EndGrace later is closed on its loop. A session already
// ending counts as found. Any goroutine.
func (s *Server) EndSession(id uint64) bool {
	s.mu.Lock()
	var found *session
	for ss := range s.sessions {
		if ss.id == id && phase(ss.phase.Load()) == phaseRelaying {
			found = ss
			break
		}
	}
	s.mu.Unlock()
	if found == nil {
		return false
	}
	found.end(EndAdmin)
	time.AfterFunc(EndGrace, found.closeIfOpen)
	return true
}

// closeIfOpen closes, on its loop, a session still open: the client has
// not taken its close frame. Any goroutine.
func (ss *session) closeIfOpen() {
	_ = ss.raw.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		if phase(ss.phase.Load()) == phaseRelaying {
			ss.stall() // the reason stays EndAdmin: end set it first
		}
		return nil
	}))
}
