//go:build linux

package e2e

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/loop"
	"github.com/consoleproxy/consoleproxy/relay"
	"github.com/consoleproxy/consoleproxy/relay/tokens"
)

// Each refusal of docs/contract.md's status table, and that none of them causes a
// connection to the compute host.
func TestRefusalStatuses(t *testing.T) {
	p := startProxy(t, nil)
	b := startBackend(t, echo)
	port := b.port()
	good := p.mint(port, nil)
	expired := p.mint(port, func(r *record) { r.Expires = time.Now().Add(-time.Minute).Unix() })
	serial := p.mint(port, func(r *record) { r.ConsoleType = "serial" })
	tests := []struct {
		name   string
		r      req
		status int
		result string
	}{
		{"no token", req{target: "/"}, 403, "auth_failed"},
		{"empty token", req{target: "/?token="}, 403, "auth_failed"},
		{"unknown token", req{token: "not-a-token"}, 403, "auth_failed"},
		{"expired token", req{token: expired}, 403, "auth_failed"},
		{"wrong console type", req{token: serial}, 403, "auth_failed"},
		{"missing key", req{token: good, headers: map[string]string{"Sec-WebSocket-Key": ""}}, 400, "bad_request"},
		{"bad key", req{token: good, headers: map[string]string{"Sec-WebSocket-Key": "c2hvcnQ="}}, 400, "bad_request"},
		{"no upgrade header", req{token: good, headers: map[string]string{"Upgrade": "", "Connection": ""}}, 404, "not_websocket"},
		{"version 8", req{token: good, headers: map[string]string{"Sec-WebSocket-Version": "8"}}, 426, "unsupported_version"},
		{"POST", req{raw: "POST /?token=" + good + " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"}, 400, "bad_request"},
		{"HTTP/1.0", req{raw: "GET /?token=" + good + " HTTP/1.0\r\nHost: x\r\n\r\n"}, 400, "bad_request"},
		{"headers too large", req{token: good, headers: map[string]string{"X-Big": strings.Repeat("a", 20000)}}, 431, "headers_too_large"},
		{"origin of another host", req{token: good, headers: map[string]string{"Origin": "http://evil.example"}}, 403, "origin_refused"},
		{"origin null", req{token: good, headers: map[string]string{"Origin": "null"}}, 403, "origin_refused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, p.addr, tc.r)
			if c.resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", c.resp.StatusCode, tc.status)
			}
			if tc.status == 426 && c.resp.Header.Get("Sec-WebSocket-Version") != "13" {
				t.Fatal("426 without Sec-WebSocket-Version: 13")
			}
			if !c.resp.Close { // net/http moves "Connection: close" here
				t.Fatal("refusal without Connection: close")
			}
			c.expectEOF()
		})
	}
	if n := b.accepts.Load(); n != 0 {
		t.Fatalf("refused clients caused %d connections to the compute host", n)
	}
	c := open(t, p.addr, req{token: good})
	c.conn.Close()
	testutil.WaitFor(t, "metrics", func() bool {
		m := metricsText(p)
		return strings.Contains(m, `consoleproxy_sessions_total{result="ok"} 1`) &&
			strings.Contains(m, `consoleproxy_sessions_total{result="auth_failed"} 5`) &&
			strings.Contains(m, `consoleproxy_sessions_total{result="origin_refused"} 2`)
	})
}

// The host cannot be reached, or is outside --allowed-targets: 502.
func TestBadGateway(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closedPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	p := startProxy(t, nil)
	c := dial(t, p.addr, req{token: p.mint(closedPort, nil)})
	if c.resp.StatusCode != 502 {
		t.Fatalf("unreachable: status %d", c.resp.StatusCode)
	}

	b := startBackend(t, echo)
	outside, _ := relay.ParseTargets("192.0.2.0/24")
	q := startProxy(t, func(cfg *loop.Config) { cfg.Dial.Allowed = outside })
	c = dial(t, q.addr, req{token: q.mint(b.port(), nil)})
	if c.resp.StatusCode != 502 {
		t.Fatalf("outside allowed targets: status %d", c.resp.StatusCode)
	}
	if b.accepts.Load() != 0 {
		t.Fatal("a target outside --allowed-targets was connected to")
	}
}

// --max-sessions: over the cap a new client gets 503; a freed slot is reused.
func TestMaxSessions(t *testing.T) {
	p := startProxy(t, func(cfg *loop.Config) { cfg.MaxSessions = 2 })
	b := startBackend(t, echo)
	c1 := open(t, p.addr, req{token: p.mint(b.port(), nil)})
	open(t, p.addr, req{token: p.mint(b.port(), nil)})
	c := dial(t, p.addr, req{token: p.mint(b.port(), nil)})
	if c.resp.StatusCode != 503 {
		t.Fatalf("third session: status %d, want 503", c.resp.StatusCode)
	}
	c1.conn.Close()
	testutil.WaitFor(t, "slot freed", func() bool { return p.srv.Active() == 1 })
	open(t, p.addr, req{token: p.mint(b.port(), nil)})
}

// blockingStore holds every lookup until released: it saturates the
// worker pool deterministically.
type blockingStore struct {
	tokens.Store
	gate    chan struct{}
	waiting chan struct{}
}

func (s *blockingStore) Lookup(ctx context.Context, h tokens.Hash) (tokens.Record, error) {
	s.waiting <- struct{}{}
	<-s.gate
	return s.Store.Lookup(ctx, h)
}

// A saturated worker pool refuses new handshakes with 503 instead of
// piling them up; the queued ones complete once workers free up.
func TestWorkerPoolSaturation(t *testing.T) {
	gate := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	var bs *blockingStore
	p := startProxy(t, func(cfg *loop.Config) {
		bs = &blockingStore{Store: cfg.Store, gate: gate, waiting: make(chan struct{}, 10)}
		cfg.Store, cfg.Workers, cfg.Queue = bs, 1, 1
	})
	t.Cleanup(release) // runs before the proxy's cleanup
	b := startBackend(t, echo)
	t1, t2, t3 := p.mint(b.port(), nil), p.mint(b.port(), nil), p.mint(b.port(), nil)
	var wg sync.WaitGroup
	statuses := make([]int, 2)
	for i, tok := range []string{t1, t2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = dial(t, p.addr, req{token: tok}).resp.StatusCode
		}()
		if i == 0 {
			<-bs.waiting // the only worker is busy; the next handshake waits in the queue
		}
	}
	testutil.WaitFor(t, "queue full", func() bool { return p.srv.QueueLen() == 1 })
	if c := dial(t, p.addr, req{token: t3}); c.resp.StatusCode != 503 {
		t.Fatalf("with the queue full: status %d, want 503", c.resp.StatusCode)
	}
	release()
	wg.Wait()
	if statuses[0] != 101 || statuses[1] != 101 {
		t.Fatalf("queued handshakes: %v, want 101s", statuses)
	}
	if !strings.Contains(metricsText(p), `consoleproxy_sessions_total{result="overloaded"}`) {
		t.Fatal("overloaded not counted")
	}
}

func metricsText(p *proxy) string {
	var b strings.Builder
	p.srv.WriteMetrics(&b)
	return b.String()
}
