//go:build linux

package e2e

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/loop"
	"github.com/consoleproxy/consoleproxy/relay"
)

// fakeResolver gives the names it holds their addresses, in order; any
// other name does not resolve.
type fakeResolver map[string][]netip.Addr

func (r fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := r[host]; ok {
		return append([]netip.Addr(nil), a...), nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// outcome is the answer one client got to its upgrade, in arrival order.
type outcome struct {
	who    string
	status int
}

// sendUpgrade sends an upgrade for token on a new connection and reports
// the answer's status to out when it comes (-1 if the connection ends
// first).
func sendUpgrade(t testing.TB, addr, token, who string, out chan<- outcome) {
	t.Helper()
	c := dialRaw(t, addr)
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	if _, err := io.WriteString(c, req{protocol: "binary", token: token}.request(addr)); err != nil {
		t.Fatal(err)
	}
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			out <- outcome{who, -1}
			return
		}
		out <- outcome{who, resp.StatusCode}
	}()
}

// metricValue is the value of an unlabelled metric line, or -1.
func metricValue(p *proxy, name string) int {
	for _, l := range strings.Split(metricsText(p), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			if n, err := strconv.ParseFloat(v, 64); err == nil {
				return int(n)
			}
		}
	}
	return -1
}

// dispatched waits until every one of n handshakes is with a worker or a
// relay poller: either all n wait on the pollers, or (a dial on the
// worker) every worker holds one and the rest are queued.
func dispatched(t testing.TB, p *proxy, n, workers int) {
	t.Helper()
	testutil.WaitFor(t, "the dead handshakes dispatched", func() bool {
		return metricValue(p, "consoleproxy_host_handshakes_pending") == n || p.srv.QueueLen() == n-workers
	})
}

// A dead --compute-proxy holds no worker: with two workers and four
// sessions whose forward proxy never answers the SYN, a handshake that
// needs a worker (here one refused by the token store) is answered before
// any of them gets its 502, the four wait on the relay pollers, and each
// ends with 502 host_unreachable at --connect-timeout. With the proxy's
// connect on the worker, two of them pinned both workers for the whole
// timeout and everyone else queued behind.
func TestDeadForwardProxyHoldsNoWorker(t *testing.T) {
	const workers, dead = 2, 4
	proxyAddr := testutil.HangingHost(t)
	live := startBackend(t, echo)
	p := startProxy(t, func(cfg *loop.Config) {
		cfg.Workers = workers
		cfg.Dial.Proxy = &relay.ForwardProxy{Addr: proxyAddr.String()}
		cfg.Dial.Timeout = 4 * time.Second
		cfg.HandshakeTimeout = time.Minute
	})
	out := make(chan outcome, dead+1)
	for range dead {
		sendUpgrade(t, p.addr, p.mint(live.port(), nil), "dead proxy", out)
	}
	dispatched(t, p, dead, workers)

	refused := dial(t, p.addr, req{token: strings.Repeat("0", 32)})
	out <- outcome{"refused", refused.resp.StatusCode}
	if q := p.srv.QueueLen(); q != 0 {
		t.Errorf("%d handshakes queued for a worker", q)
	}
	if first := <-out; first != (outcome{"refused", 403}) {
		t.Fatalf("first answer %+v, want the refused client's 403 before any dead-proxy 502", first)
	}
	for range dead {
		if o := <-out; o != (outcome{"dead proxy", 502}) {
			t.Fatalf("answer %+v, want 502", o)
		}
	}
	if m := metricsText(p); !strings.Contains(m, `consoleproxy_sessions_total{result="host_unreachable"} 4`) {
		t.Fatalf("dead proxy not counted as host_unreachable:\n%s", grepLines(m, "sessions_total"))
	}
	if live.accepts.Load() != 0 {
		t.Fatal("the compute host was reached around the forward proxy")
	}
}

// A name with several addresses is connected on the relay pollers, one
// address after another: with two workers, three sessions to a name whose
// two addresses never answer the SYN and one to a name whose first address
// is dead and second alive, a session to a live IP gets its 101 and relays
// at once; the second name's session moves on to its live address after
// its share of --connect-timeout and gets its 101 before the dead ones get
// their 502 host_unreachable at the deadline. With the blocking dial the
// dead sessions held both workers, and the first dead address took the
// whole timeout, so the second name never reached its live address.
func TestMultiAddressHoldsNoWorker(t *testing.T) {
	const workers, dead = 2, 3
	live := startBackend(t, echo)
	port := uint16(live.port())
	dead2 := testutil.HangingHostAt(t, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), port))
	dead3 := testutil.HangingHostAt(t, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.3"), port))
	p := startProxy(t, func(cfg *loop.Config) {
		cfg.Workers = workers
		cfg.Dial.Timeout = 5 * time.Second
		cfg.Dial.Allowed = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		cfg.Dial.Resolver = fakeResolver{
			"dead.test":  {dead2.Addr(), dead3.Addr()},
			"flaky.test": {dead2.Addr(), netip.MustParseAddr("127.0.0.1")},
		}
		cfg.HandshakeTimeout = time.Minute
	})
	out := make(chan outcome, dead+2)
	for range dead {
		sendUpgrade(t, p.addr, p.mint(int(port), func(r *record) { r.Host = "dead.test" }), "dead name", out)
	}
	sendUpgrade(t, p.addr, p.mint(int(port), func(r *record) { r.Host = "flaky.test" }), "first address dead", out)
	dispatched(t, p, dead+1, workers)

	c := dial(t, p.addr, req{protocol: "binary", token: p.mint(int(port), nil)})
	out <- outcome{"live", c.resp.StatusCode}
	if q := p.srv.QueueLen(); q != 0 {
		t.Errorf("%d handshakes queued for a worker", q)
	}
	if first := <-out; first != (outcome{"live", 101}) {
		t.Fatalf("first answer %+v, want the live host's 101 before any other", first)
	}
	c.send(ws.OpBinary, []byte("alive"))
	if got := c.readData(5); string(got) != "alive" {
		t.Fatalf("echo %q", got)
	}
	if second := <-out; second != (outcome{"first address dead", 101}) {
		t.Fatalf("second answer %+v, want the second address's 101 before the dead name's 502s", second)
	}
	for range dead {
		if o := <-out; o != (outcome{"dead name", 502}) {
			t.Fatalf("answer %+v, want 502", o)
		}
	}
	if m := metricsText(p); !strings.Contains(m, `consoleproxy_sessions_total{result="host_unreachable"} 3`) {
		t.Fatalf("dead name not counted as host_unreachable:\n%s", grepLines(m, "sessions_total"))
	}
}

// Every address of a name is checked against --allowed-targets before any
// connect: a name with one address inside and one outside is refused
// (target_refused) and the inside one never gets a SYN, on the direct path
// and through a --compute-proxy (which is not contacted either).
func TestMultiAddressRefusedBeforeConnect(t *testing.T) {
	host := startBackend(t, echo)
	fwd, _ := fakeForwardProxy(t)
	resolver := fakeResolver{"mixed.test": {netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.1.2.3")}}
	for _, via := range []*relay.ForwardProxy{nil, {Addr: "127.0.0.1:" + strconv.Itoa(fwd.port())}} {
		p := startProxy(t, func(cfg *loop.Config) {
			cfg.Dial.Proxy = via
			cfg.Dial.Allowed = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
			cfg.Dial.Resolver = resolver
		})
		r := dial(t, p.addr, req{token: p.mint(host.port(), func(r *record) { r.Host = "mixed.test" })})
		if r.resp.StatusCode != 502 {
			t.Fatalf("proxy %v: status %d, want 502", via, r.resp.StatusCode)
		}
		if !strings.Contains(metricsText(p), `consoleproxy_sessions_total{result="target_refused"} 1`) {
			t.Fatalf("proxy %v: not counted as target_refused", via)
		}
	}
	if host.accepts.Load() != 0 || fwd.accepts.Load() != 0 {
		t.Fatalf("refused name connected: host %d, forward proxy %d", host.accepts.Load(), fwd.accepts.Load())
	}
}

// BenchmarkHandshakeBesideDeadDials measures handshakes per second while
// 4 × Workers sessions wait for connects that never answer: behind a dead
// --compute-proxy (every session goes through the one proxy, so the
// handshakes measured are ones the token store refuses, which need a worker
// all the same) and to a name whose addresses are both dead (the handshakes
// measured open sessions to a live host). DECISIONS.md has the figures:
//
//	go test -run '^$' -bench BenchmarkHandshakeBesideDeadDials -benchtime 200x ./loop/e2e
func BenchmarkHandshakeBesideDeadDials(b *testing.B) {
	const workers, dead = 4, 16
	live := startBackend(b, echo)
	port := uint16(live.port())
	dead2 := testutil.HangingHostAt(b, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), port))
	dead3 := testutil.HangingHostAt(b, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.3"), port))
	for _, mode := range []string{"dead-proxy", "dead-name"} {
		b.Run(mode, func(b *testing.B) {
			p := startProxy(b, func(cfg *loop.Config) {
				cfg.Workers = workers
				cfg.Dial.Timeout = 3 * time.Second
				cfg.HandshakeTimeout = time.Minute
				cfg.Dial.Resolver = fakeResolver{"dead.test": {dead2.Addr(), dead3.Addr()}}
				if mode == "dead-proxy" {
					cfg.Dial.Proxy = &relay.ForwardProxy{Addr: dead2.String()}
				}
			})
			want, tokens := 101, make([]string, b.N)
			for i := range tokens {
				if mode == "dead-proxy" {
					want, tokens[i] = 403, strings.Repeat("0", 32)
				} else {
					tokens[i] = p.mint(int(port), nil)
				}
			}
			out := make(chan outcome, dead)
			for range dead {
				sendUpgrade(b, p.addr, p.mint(int(port), func(r *record) { r.Host = "dead.test" }), "dead", out)
			}
			dispatched(b, p, dead, workers)
			b.ResetTimer()
			for _, token := range tokens {
				c := dial(b, p.addr, req{protocol: "binary", token: token})
				if c.resp.StatusCode != want {
					b.Fatalf("status %d, want %d", c.resp.StatusCode, want)
				}
				c.conn.Close()
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
			for range dead {
				<-out
			}
		})
	}
}
