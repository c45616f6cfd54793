package loop

import (
	"cmp"
	"net/netip"
	"slices"
	"time"
)

// EndAdmin is the end of a session the operator ended (the admin API's
// DELETE /v1/sessions/{id}): close 1008, policy violation, as for a token
// that may no longer be used.
const EndAdmin End = "ended_by_admin"

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
func (s *Server) Sessions() []SessionInfo {
	s.mu.Lock()
	out := make([]SessionInfo, 0, len(s.sessions))
	for ss := range s.sessions {
		if phase(ss.phase.Load()) != phaseRelaying {
			continue
		}
		out = append(out, SessionInfo{
			ID: ss.id, InstanceUUID: ss.rec.InstanceUUID, ConsoleType: ss.rec.ConsoleType, Peer: ss.client,
			Host: ss.rec.Host, Port: ss.rec.Port, Started: ss.accepted,
			BytesClientToHost: ss.up.Load(), BytesHostToClient: ss.down.Load(),
		})
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b SessionInfo) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// EndSession ends the relaying session id with close 1008 (EndAdmin) and
// reports whether there was one. The close frame is queued on the
// session's event loop behind what is already queued for the client, and
// the compute host is closed, as for a shutdown (end). A session already
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
	return true
}
