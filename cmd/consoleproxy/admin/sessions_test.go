package admin

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/consoleproxy/consoleproxy/loop"
)

// stubSessions is a fixed list of sessions; ended records EndSession's ids.
type stubSessions struct {
	list  []loop.SessionInfo
	ended []uint64
}

func (s *stubSessions) Sessions() []loop.SessionInfo { return s.list }

func (s *stubSessions) EndSession(id uint64) bool {
	for _, x := range s.list {
		if x.ID == id {
			s.ended = append(s.ended, id)
			return true
		}
	}
	return false
}

// TestSessionsWire: GET /v1/sessions streams every session as one JSON
// list with the contract's fields; DELETE ends a listed id (204) and
// answers 404 for any other.
func TestSessionsWire(t *testing.T) {
	started := time.Date(2026, 12, 7, 1, 2, 3, 400, time.UTC)
	stub := &stubSessions{}
	for i := uint64(1); i <= 3; i++ {
		stub.list = append(stub.list, loop.SessionInfo{ID: i * 10, InstanceUUID: testUUID, ConsoleType: "novnc",
			Peer: netip.MustParseAddr("192.0.2.7"), Host: "compute-1", Port: 5900 + int(i), Started: started,
			BytesClientToHost: int64(i), BytesHostToClient: int64(i) * 1000})
	}
	fx := serveAPI(t, Config{Store: embedded(t), Sessions: stub})
	code, body := fx.do(t, "GET", "/v1/sessions", auth, nil)
	var got []map[string]any
	if err := json.Unmarshal([]byte(body), &got); code != http.StatusOK || err != nil || len(got) != 3 {
		t.Fatalf("GET: %d %q %v", code, body, err)
	}
	want := map[string]any{"id": "20", "instance_uuid": testUUID, "console_type": "novnc", "peer": "192.0.2.7",
		"host": "compute-1", "port": 5902.0, "started": "2026-12-07T01:02:03.0000004Z",
		"bytes_client_to_host": 2.0, "bytes_host_to_client": 2000.0}
	if len(got[1]) != len(want) {
		t.Errorf("fields %v, want %v", got[1], want)
	}
	for k, v := range want {
		if got[1][k] != v {
			t.Errorf("%s = %v, want %v", k, got[1][k], v)
		}
	}
	for path, status := range map[string]int{"/v1/sessions/30": 204, "/v1/sessions/31": 404, "/v1/sessions/-1": 404} {
		if code, body := fx.do(t, "DELETE", path, auth, nil); code != status {
			t.Errorf("DELETE %s: %d %s, want %d", path, code, body, status)
		}
	}
	if len(stub.ended) != 1 || stub.ended[0] != 30 {
		t.Errorf("ended %v", stub.ended)
	}
}
