package admin

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/consoleproxy/consoleproxy/loop"
)

// sessionWire is one entry of GET /v1/sessions: never a token or a hash.
type sessionWire struct {
	ID                string `json:"id"`
	InstanceUUID      string `json:"instance_uuid"`
	ConsoleType       string `json:"console_type"`
	Peer              string `json:"peer"`
	Host              string `json:"host"`
	Port              int    `json:"port"`
	Started           string `json:"started"` // RFC 3339, UTC
	BytesClientToHost int64  `json:"bytes_client_to_host"`
	BytesHostToClient int64  `json:"bytes_host_to_client"`
}

func toWire(s loop.SessionInfo) sessionWire {
	return sessionWire{
		ID: strconv.FormatUint(s.ID, 10), InstanceUUID: s.InstanceUUID, ConsoleType: s.ConsoleType,
		Peer: s.Peer.String(), Host: s.Host, Port: s.Port, Started: s.Started.UTC().Format(time.RFC3339Nano),
		BytesClientToHost: s.BytesClientToHost, BytesHostToClient: s.BytesHostToClient,
	}
}

// listSessions answers GET /v1/sessions: the live sessions of this proxy,
// a JSON list (empty, never null). Entries are encoded and written one at
// a time through a buffered writer, so a proxy with many sessions never
// holds the whole answer (about 225 bytes a session) in memory.
func (a *API) listSessions(w http.ResponseWriter, _ *http.Request) {
	var list []loop.SessionInfo
	if a.cfg.Sessions != nil {
		list = a.cfg.Sessions.Sessions()
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 32<<10)
	enc := json.NewEncoder(bw)
	sep := byte('[')
	for _, s := range list {
		if bw.WriteByte(sep) != nil || enc.Encode(toWire(s)) != nil {
			return // the client is gone
		}
		sep = ','
	}
	if sep == '[' {
		_, _ = bw.WriteString("[")
	}
	_, _ = bw.WriteString("]\n")
	_ = bw.Flush() // an error is the client's: gone
}

// endSession answers DELETE /v1/sessions/{id}: 204 once the session's close
// 1008 is queued on its loop, 404 for an id that is not a live session.
func (a *API) endSession(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil || a.cfg.Sessions == nil || !a.cfg.Sessions.EndSession(id) {
		notFound(w)
		return
	}
	a.log.Info("admin: session ended", "session", id)
	w.WriteHeader(http.StatusNoContent)
}
