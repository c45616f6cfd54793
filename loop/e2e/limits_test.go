//go:build linux

package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/loop"
	"github.com/consoleproxy/consoleproxy/loop/policy"
	"github.com/consoleproxy/consoleproxy/relay/tokens"
)

// The limits of issue 12: --max-pending, --max-sessions-per-ip,
// --auth-failures-per-ip and --max-sessions' default. Each refused client
// must leave the compute host untouched (its listener counts accepts).

// expectClosed requires the proxy to close conn with nothing sent (EOF).
func expectClosed(t *testing.T, conn net.Conn, what string) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := conn.Read(make([]byte, 64)); n != 0 || err != io.EOF {
		t.Fatalf("%s: read %d bytes, %v; want EOF", what, n, err)
	}
}

// wantMetric waits until the proxy's metrics hold every line of wants.
func wantMetric(t *testing.T, p *proxy, wants ...string) {
	t.Helper()
	testutil.WaitFor(t, strings.Join(wants, ", "), func() bool {
		m := metricsText(p)
		for _, w := range wants {
			if !strings.Contains(m, w+"\n") {
				return false
			}
		}
		return true
	})
}

// wantAccepts requires the compute host to have accepted exactly n
// connections: its accept loop may lag the 101 (the connect completes in
// the kernel first), so wait for n, then check that no more came (any
// refused client's connect would have been queued before the last 101's).
func wantAccepts(t *testing.T, b *backend, n int64) {
	t.Helper()
	testutil.WaitFor(t, fmt.Sprintf("%d host connections", n), func() bool { return b.accepts.Load() >= n })
	if got := b.accepts.Load(); got != n {
		t.Fatalf("%d connections reached the compute host, want %d (one per 101)", got, n)
	}
}

// Slowloris: idle connections (silent, or half a request line) fill
// --max-pending; further connections are closed at accept, counted as
// pending_limit, and never reach the compute host; once the idle ones go, a
// real client is served.
func TestMaxPending(t *testing.T) {
	const maxPending, extra = 4, 3
	p := startProxy(t, func(cfg *loop.Config) {
		cfg.MaxPending = maxPending
		cfg.HandshakeTimeout = time.Hour // only the limit may close anything here
	})
	b := startBackend(t, echo)
	var idle []net.Conn
	for i := range maxPending {
		c := dialRaw(t, p.addr)
		if i%2 == 1 {
			if _, err := io.WriteString(c, "GET /?token="); err != nil {
				t.Fatal(err)
			}
		}
		idle = append(idle, c)
	}
	testutil.WaitFor(t, "the idle connections pending", func() bool { return p.srv.Pending() == maxPending })
	for i := range extra {
		expectClosed(t, dialRaw(t, p.addr), fmt.Sprintf("connection %d past --max-pending", i+1))
	}
	wantMetric(t, p, fmt.Sprintf(`consoleproxy_sessions_total{result="pending_limit"} %d`, extra),
		fmt.Sprintf("consoleproxy_connections_pending %d", maxPending))
	for _, c := range idle {
		c.Close()
	}
	testutil.WaitFor(t, "no connection pending", func() bool { return p.srv.Pending() == 0 })
	c := open(t, p.addr, req{token: p.mint(b.port(), nil)})
	c.send(ws.OpBinary, []byte("served"))
	if got := string(c.readData(6)); got != "served" {
		t.Fatalf("echo %q", got)
	}
	if p.srv.Pending() != 0 {
		t.Fatalf("a relaying session still counts as pending: %d", p.srv.Pending())
	}
	wantAccepts(t, b, 1)
}

// clientHello is the first flight of a TLS client: one ClientHello record,
// captured from crypto/tls over a pipe.
func clientHello(t *testing.T) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	go func() {
		_ = tls.Client(b, &tls.Config{InsecureSkipVerify: true}).Handshake()
		b.Close()
	}()
	head := make([]byte, 5)
	if _, err := io.ReadFull(a, head); err != nil {
		t.Fatal(err)
	}
	rec := make([]byte, 5+(int(head[3])<<8|int(head[4])))
	copy(rec, head)
	if _, err := io.ReadFull(a, rec[5:]); err != nil {
		t.Fatal(err)
	}
	return rec
}

// Silent TLS clients: a ClientHello and then nothing. Each holds its
// --max-pending slot while its handshake waits on the TLS side, so further
// connections are closed at accept; the slots come back when they leave,
// and a wss:// session's slot ends with its upgrade.
func TestMaxPendingTLS(t *testing.T) {
	const maxPending = 2
	k := newPKI(t)
	cert, err := loop.LoadCert(k.certFile, k.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, func(cfg *loop.Config) {
		cfg.MaxPending = maxPending
		cfg.HandshakeTimeout = time.Hour
		cfg.TLS = &loop.TLSConfig{Config: &tls.Config{GetCertificate: cert.GetCertificate}}
	})
	b := startBackend(t, echo)
	hello := clientHello(t)
	var silent []net.Conn
	for range maxPending {
		c := dialRaw(t, p.addr)
		if _, err := c.Write(hello); err != nil {
			t.Fatal(err)
		}
		// The server's first flight: the TLS side has the connection.
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			t.Fatalf("no ServerHello: %v", err)
		}
		silent = append(silent, c)
	}
	if n := p.srv.Pending(); n != maxPending {
		t.Fatalf("TLS handshakes in progress count %d pending, want %d", n, maxPending)
	}
	expectClosed(t, dialRaw(t, p.addr), "a plain connection past --max-pending")
	if _, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", p.addr, &tls.Config{RootCAs: k.pool}); err == nil {
		t.Fatal("a TLS connection past --max-pending got through its handshake")
	}
	wantMetric(t, p, `consoleproxy_sessions_total{result="pending_limit"} 2`)
	for _, c := range silent {
		c.Close()
	}
	testutil.WaitFor(t, "the TLS handshakes' slots back", func() bool { return p.srv.Pending() == 0 })
	c, err := dialTLS(t, p.addr, &tls.Config{RootCAs: k.pool}, req{token: p.mint(b.port(), nil)})
	if err != nil || c.resp.StatusCode != 101 {
		t.Fatalf("wss:// client after the silent ones left: %v %v", err, c)
	}
	c.send(ws.OpBinary, []byte("tls"))
	if got := string(c.readData(3)); got != "tls" {
		t.Fatalf("echo %q", got)
	}
	testutil.WaitFor(t, "the wss:// session's slot back after its upgrade", func() bool { return p.srv.Pending() == 0 })
	wantAccepts(t, b, 1)
}

// from is a forwarding header naming addr as the client.
func from(addr string) map[string]string { return map[string]string{"X-Forwarded-For": addr} }

// --max-sessions-per-ip: past the cap an address gets 429 per_ip_limit and
// the host is never dialled; a session refused by the worker and a closed
// one give their count back; no address outlives its sessions. From an
// untrusted peer the forwarding header changes nothing; behind
// --trusted-proxies the forwarded address is the one counted.
func TestMaxSessionsPerIP(t *testing.T) {
	trusted, _ := policy.ParseTrustedProxies("127.0.0.0/8")
	p := startProxy(t, func(cfg *loop.Config) { cfg.MaxSessionsPerIP = 2 })
	q := startProxy(t, func(cfg *loop.Config) { cfg.MaxSessionsPerIP = 2; cfg.Trusted = trusted })
	b := startBackend(t, echo)

	c1 := open(t, p.addr, req{token: p.mint(b.port(), nil), headers: from("192.0.2.1")})
	c2 := open(t, p.addr, req{token: p.mint(b.port(), nil), headers: from("192.0.2.2")})
	if c := dial(t, p.addr, req{token: p.mint(b.port(), nil), headers: from("192.0.2.3")}); c.resp.StatusCode != 429 || !c.resp.Close {
		t.Fatalf("third session from one peer: status %d (close %v), want 429", c.resp.StatusCode, c.resp.Close)
	}
	c1.conn.Close()
	testutil.WaitFor(t, "a session gone", func() bool { return p.srv.Active() == 1 })
	if c := dial(t, p.addr, req{token: "unknown"}); c.resp.StatusCode != 403 {
		t.Fatalf("unknown token: %d", c.resp.StatusCode)
	}
	c3 := open(t, p.addr, req{token: p.mint(b.port(), nil)}) // the refused one gave its count back
	if c := dial(t, p.addr, req{token: p.mint(b.port(), nil)}); c.resp.StatusCode != 429 {
		t.Fatalf("at the cap again: status %d, want 429", c.resp.StatusCode)
	}
	wantMetric(t, p, `consoleproxy_sessions_total{result="per_ip_limit"} 2`, "consoleproxy_per_ip_addresses 1")
	c2.conn.Close()
	c3.conn.Close()
	wantMetric(t, p, "consoleproxy_per_ip_addresses 0", "consoleproxy_sessions_active 0")

	open(t, q.addr, req{token: q.mint(b.port(), nil), headers: from("192.0.2.1")})
	open(t, q.addr, req{token: q.mint(b.port(), nil), headers: from("192.0.2.1")})
	if c := dial(t, q.addr, req{token: q.mint(b.port(), nil), headers: from("192.0.2.1")}); c.resp.StatusCode != 429 {
		t.Fatalf("third session forwarded for one address: status %d, want 429", c.resp.StatusCode)
	}
	open(t, q.addr, req{token: q.mint(b.port(), nil), headers: from("192.0.2.2")})
	open(t, q.addr, req{token: q.mint(b.port(), nil)}) // the proxy itself, not forwarding
	wantMetric(t, q, `consoleproxy_sessions_total{result="per_ip_limit"} 1`, "consoleproxy_per_ip_addresses 3")
	wantAccepts(t, b, 3+4)
}

// countingStore counts token lookups.
type countingStore struct {
	tokens.Store
	lookups atomic.Int64
}

func (s *countingStore) Lookup(ctx context.Context, h tokens.Hash) (tokens.Record, error) {
	s.lookups.Add(1)
	return s.Store.Lookup(ctx, h)
}

// clock is a time.Now that a test can move forward.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// --auth-failures-per-ip: after N refused tokens (missing, unknown, wrong
// type) an address gets 429 auth_rate_limited for the rest of the minute,
// decided before any lookup, even with a good token; other addresses are
// untouched; the next minute it is served again. A client that leaves
// before its refusal still counts.
func TestAuthFailuresPerIP(t *testing.T) {
	trusted, _ := policy.ParseTrustedProxies("127.0.0.0/8")
	var clk clock
	limited := func(n int, cs **countingStore) func(*loop.Config) {
		return func(cfg *loop.Config) {
			*cs = &countingStore{Store: cfg.Store}
			cfg.Store, cfg.AuthFailuresPerIP, cfg.Trusted = *cs, n, trusted
			cfg.Now, cfg.PingInterval = clk.now, -1
		}
	}
	var cs *countingStore
	p := startProxy(t, limited(3, &cs))
	b := startBackend(t, echo)
	serial := p.mint(b.port(), func(r *record) { r.ConsoleType = "serial" })
	for _, r := range []req{{token: "unknown"}, {target: "/"}, {token: serial}} {
		r.headers = from("192.0.2.1")
		if c := dial(t, p.addr, r); c.resp.StatusCode != 403 {
			t.Fatalf("refused token %q: status %d, want 403", r.token, c.resp.StatusCode)
		}
	}
	if n := cs.lookups.Load(); n != 2 {
		t.Fatalf("%d lookups, want 2 (a missing token needs none)", n)
	}
	good := p.mint(b.port(), nil)
	for range 2 {
		if c := dial(t, p.addr, req{token: good, headers: from("192.0.2.1")}); c.resp.StatusCode != 429 || !c.resp.Close {
			t.Fatalf("a locked-out address with a good token: status %d, want 429", c.resp.StatusCode)
		}
	}
	if n := cs.lookups.Load(); n != 2 {
		t.Fatalf("a locked-out address caused %d more lookups", n-2)
	}
	if n := b.accepts.Load(); n != 0 {
		t.Fatalf("refused clients caused %d host connections", n)
	}
	open(t, p.addr, req{token: p.mint(b.port(), nil), headers: from("192.0.2.2")}).conn.Close()
	open(t, p.addr, req{token: p.mint(b.port(), nil)}).conn.Close() // the peer itself
	wantMetric(t, p, `consoleproxy_sessions_total{result="auth_rate_limited"} 2`,
		`consoleproxy_sessions_total{result="auth_failed"} 3`, "consoleproxy_auth_failure_addresses 1")

	clk.offset.Add(int64(time.Minute)) // the next minute: served again
	open(t, p.addr, req{token: good, headers: from("192.0.2.1")})
	wantMetric(t, p, "consoleproxy_auth_failure_addresses 0")

	// Fire and forget: the token is refused after the client left; it
	// counts. One worker: the session after it is looked up only once the
	// refused one is settled.
	var cq *countingStore
	q := startProxy(t, func(cfg *loop.Config) { limited(1, &cq)(cfg); cfg.Workers = 1 })
	raw := dialRaw(t, q.addr)
	if _, err := io.WriteString(raw, req{token: "unknown", headers: from("192.0.2.9")}.request(q.addr)); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	wantMetric(t, q, "consoleproxy_auth_failure_addresses 1")
	open(t, q.addr, req{token: q.mint(b.port(), nil), headers: from("192.0.2.10")})
	if c := dial(t, q.addr, req{token: q.mint(b.port(), nil), headers: from("192.0.2.9")}); c.resp.StatusCode != 429 {
		t.Fatalf("after a refusal its client never read: status %d, want 429", c.resp.StatusCode)
	}
	if n := cq.lookups.Load(); n != 2 {
		t.Fatalf("%d lookups, want 2", n)
	}
}

// A burst from one address: an attempt counts from before its lookup, so
// with N lookups in flight the next is refused without one, and those N,
// refused, keep the address locked.
func TestAuthFailuresBurst(t *testing.T) {
	trusted, _ := policy.ParseTrustedProxies("127.0.0.0/8")
	gate := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	var bs *blockingStore
	p := startProxy(t, func(cfg *loop.Config) {
		bs = &blockingStore{Store: cfg.Store, gate: gate, waiting: make(chan struct{}, 10)}
		cfg.Store, cfg.AuthFailuresPerIP, cfg.Trusted = bs, 2, trusted
	})
	t.Cleanup(release) // runs before the proxy's cleanup
	b := startBackend(t, echo)
	var wg sync.WaitGroup
	statuses := make([]int, 2)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = dial(t, p.addr, req{token: "unknown", headers: from("192.0.2.1")}).resp.StatusCode
		}()
		<-bs.waiting // its lookup has started
	}
	if c := dial(t, p.addr, req{token: p.mint(b.port(), nil), headers: from("192.0.2.1")}); c.resp.StatusCode != 429 {
		t.Fatalf("with two lookups in flight: status %d, want 429", c.resp.StatusCode)
	}
	if n := len(bs.waiting); n != 0 {
		t.Fatalf("the refused attempt caused %d lookups", n)
	}
	release()
	wg.Wait()
	if statuses[0] != 403 || statuses[1] != 403 {
		t.Fatalf("the burst's lookups: %v, want 403s", statuses)
	}
	if c := dial(t, p.addr, req{token: p.mint(b.port(), nil), headers: from("192.0.2.1")}); c.resp.StatusCode != 429 {
		t.Fatalf("after two refused tokens: status %d, want 429", c.resp.StatusCode)
	}
	open(t, p.addr, req{token: p.mint(b.port(), nil), headers: from("192.0.2.2")})
	wantAccepts(t, b, 1)
}

// --max-sessions: the 503 refusal never dials the compute host.
func TestMaxSessionsNoHostConnection(t *testing.T) {
	p := startProxy(t, func(cfg *loop.Config) { cfg.MaxSessions = 1 })
	b := startBackend(t, echo)
	open(t, p.addr, req{token: p.mint(b.port(), nil)})
	for range 3 {
		if c := dial(t, p.addr, req{token: p.mint(b.port(), nil)}); c.resp.StatusCode != 503 {
			t.Fatalf("over --max-sessions: status %d, want 503", c.resp.StatusCode)
		}
	}
	wantMetric(t, p, `consoleproxy_sessions_total{result="over_capacity"} 3`)
	wantAccepts(t, b, 1)
}

// --max-sessions defaults to what the open-file limit allows, after the
// binary raises its soft limit to the hard one: (nofile − 256) / 2. With a
// hard limit of 262 that is 3 sessions, and the fourth client gets 503.
func TestMaxSessionsDefault(t *testing.T) {
	bin := consoleproxyBinary(t)
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("--help: %v", err)
	}
	for _, want := range []string{"-max-pending", "-max-sessions-per-ip", "-auth-failures-per-ip", "(RLIMIT_NOFILE - 256) / 2"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("--help lacks %q", want)
		}
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	b := startBackend(t, echo)
	for _, tc := range []struct {
		ulimit string
		want   int
	}{
		{"-S -n 512", loop.SessionsForFDs(lim.Max)}, // soft 512 raised to the hard limit
		{"-n 262", 3},
	} {
		p := startBinaryWith(t, []string{"sh", "-c", "ulimit " + tc.ulimit + ` && exec "$@"`, "sh"},
			[]string{tokenLine("max-a", b.port()), tokenLine("max-b", b.port()), tokenLine("max-c", b.port()), tokenLine("max-d", b.port())})
		line := fmt.Sprintf(`"max_sessions":%d`, tc.want)
		testutil.WaitFor(t, line, func() bool { return strings.Contains(p.stderr.String(), line) })
		if tc.want != 3 {
			continue
		}
		wantAccepts(t, b, 0)
		for _, tok := range []string{"max-a", "max-b", "max-c"} {
			open(t, p.addr, req{token: tok})
		}
		if c := dial(t, p.addr, req{token: "max-d"}); c.resp.StatusCode != 503 {
			t.Fatalf("fourth session under nofile 262: status %d, want 503", c.resp.StatusCode)
		}
		wantAccepts(t, b, 3)
	}
}
