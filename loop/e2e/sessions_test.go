//go:build linux

package e2e

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/loop"
	"github.com/consoleproxy/consoleproxy/relay/reuse"
	"github.com/consoleproxy/consoleproxy/relay/tokens"
)

// TestSessionsListAndEnd: Server.Sessions lists the relaying sessions
// only (not a connection still in its upgrade), with the record's fields,
// the client's address and payload counters that move while the session
// lives; EndSession ends that one session with close 1008 and closes its
// compute-host socket while another goes on; an unknown or ended id is
// false.
func TestSessionsListAndEnd(t *testing.T) {
	p := startProxy(t, nil)
	b := startBackend(t, echo)
	pending := dialRaw(t, p.addr) // connected, no upgrade yet
	defer pending.Close()
	tokA, tokB := p.mint(b.port(), nil), p.mint(b.port(), nil)
	a, other := open(t, p.addr, req{token: tokA}), open(t, p.addr, req{token: tokB})
	a.send(ws.OpBinary, []byte("abc"))
	a.readData(3)
	// A frame's bytes are counted once written (its callback): poll.
	counted := func(n int64) bool {
		l := p.srv.Sessions()
		return len(l) == 2 && l[0].BytesClientToHost == n && l[0].BytesHostToClient == n
	}
	testutil.WaitFor(t, "3 bytes counted each way", func() bool { return counted(3) })
	list := p.srv.Sessions()
	if len(list) != 2 || list[0].ID >= list[1].ID {
		t.Fatalf("sessions %+v, want the two relaying ones by id", list)
	}
	s := list[0]
	if s.InstanceUUID != "6f1d7c2e-0000-4000-8000-"+tokA[:12] || s.ConsoleType != "novnc" || s.Host != "127.0.0.1" ||
		s.Port != b.port() || s.Peer.String() != "127.0.0.1" || s.Started.IsZero() ||
		s.BytesClientToHost != 3 || s.BytesHostToClient != 3 {
		t.Fatalf("session %+v", s)
	}
	a.send(ws.OpBinary, []byte("defg"))
	a.readData(4)
	testutil.WaitFor(t, "the counters to move to 7", func() bool { return counted(7) && p.srv.Sessions()[0].ID == s.ID })
	if p.srv.EndSession(0) || p.srv.EndSession(s.ID+100) {
		t.Fatal("EndSession of an unknown id reported a session")
	}
	if !p.srv.EndSession(s.ID) {
		t.Fatal("EndSession of a live session reported none")
	}
	if code, _ := a.expectClose(); code != ws.StatusPolicyViolation {
		t.Fatalf("close code %d, want 1008", code)
	}
	testutil.WaitFor(t, "the ended session to leave the list", func() bool { return len(p.srv.Sessions()) == 1 })
	if p.srv.EndSession(s.ID) {
		t.Error("EndSession of an ended session reported one")
	}
	other.send(ws.OpBinary, []byte("still"))
	if got := string(other.readData(5)); got != "still" {
		t.Fatalf("the other session: %q", got)
	}
	testutil.WaitFor(t, "the ended session's host socket to close", func() bool { return p.srv.Active() == 1 })
	if !strings.Contains(metricsText(p), `consoleproxy_session_ends_total{reason="`+string(loop.EndAdmin)+`"} 1`) {
		t.Errorf("not counted as %s", loop.EndAdmin)
	}
}

// stalledSession starts a proxy with one session whose client reads
// nothing while its host floods it, and waits until it is stalled: no byte
// moved for 40 polls in a row while the proxy holds bytes for the client
// (every socket buffer on the way full). --write-timeout is 30 s.
func stalledSession(t *testing.T) (*proxy, string) {
	t.Helper()
	b := startBackend(t, firehose(64<<20)) // more than every socket buffer on the way holds
	p := startProxy(t, func(cfg *loop.Config) { cfg.WriteTimeout = 30 * time.Second })
	token := p.mint(b.port(), nil)
	c := open(t, p.addr, req{token: token})
	_ = c.conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	var last int64
	var still int
	testutil.WaitFor(t, "the client to stall", func() bool {
		n := b.written.Load()
		if n != last || p.srv.Buffered() == 0 {
			last, still = n, 0
			return false
		}
		still++
		return still >= 40
	})
	return p, token
}

// TestEndSessionStalledClient: a session whose client reads nothing while
// its host floods it still ends within loop.EndGrace of EndSession (the
// contract's 2 s), though its close frame waits behind bytes the client
// does not take and --write-timeout is 30 s.
func TestEndSessionStalledClient(t *testing.T) {
	p, _ := stalledSession(t)
	list := p.srv.Sessions()
	if len(list) != 1 || !p.srv.EndSession(list[0].ID) {
		t.Fatalf("sessions %+v", list)
	}
	testutil.WaitFor(t, "the stalled session to end", func() bool { return p.srv.Active() == 0 })
	if !strings.Contains(metricsText(p), `consoleproxy_session_ends_total{reason="ended_by_admin"} 1`) {
		t.Error("not counted as ended_by_admin")
	}
}

// TestRevokeStalledClient: a revoked token's session whose client takes
// nothing ends within loop.EndGrace too (DELETE /v1/tokens: "within 2 s"),
// not at --write-timeout.
func TestRevokeStalledClient(t *testing.T) {
	p, token := stalledSession(t)
	if err := p.srv.Revoke(context.Background(), reuse.Key(tokens.HashToken([]byte(token)))); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the stalled session to end", func() bool { return p.srv.Active() == 0 })
	if !strings.Contains(metricsText(p), `consoleproxy_session_ends_total{reason="`+string(loop.EndRevoked)+`"} 1`) {
		t.Errorf("not counted as %s", loop.EndRevoked)
	}
}
