//go:build linux

package e2e

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/loop"
	"github.com/consoleproxy/consoleproxy/loop/policy"
	"github.com/consoleproxy/consoleproxy/relay/reuse"
)

// Where the token comes from: the query (also noVNC's /websockify path),
// else the `token` cookie; a malformed cookie part never hides a good one.
func TestTokenSources(t *testing.T) {
	p := startProxy(t, func(cfg *loop.Config) { cfg.Reuse = reuse.NewLocalGuard(reuse.Shared, nil) })
	b := startBackend(t, echo)
	tok := p.mint(b.port(), nil)
	tests := []struct {
		name   string
		r      req
		status int
	}{
		{"query", req{target: "/?token=" + tok}, 101},
		{"websockify path", req{target: "/websockify?token=" + tok}, 101},
		{"query among others", req{target: "/websockify?a=1&token=" + tok + "&b=2"}, 101},
		{"cookie", req{target: "/", headers: map[string]string{"Cookie": "token=" + tok}}, 101},
		{"cookie after a malformed part", req{target: "/", headers: map[string]string{"Cookie": "bad part; x=\"y; token=" + tok}}, 101},
		{"quoted cookie", req{target: "/", headers: map[string]string{"Cookie": `token="` + tok + `"`}}, 101},
		{"query wins over cookie", req{target: "/?token=" + tok, headers: map[string]string{"Cookie": "token=wrong"}}, 101},
		{"bad query, good cookie", req{target: "/?token=wrong", headers: map[string]string{"Cookie": "token=" + tok}}, 403},
		{"cookie of another name", req{target: "/", headers: map[string]string{"Cookie": "xtoken=" + tok}}, 403},
		{"percent-encoded query", req{target: "/?token=" + percentAll(tok)}, 101},
	}
	for _, tc := range tests {
		if c := dial(t, p.addr, tc.r); c.resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, c.resp.StatusCode, tc.status)
		}
	}
}

func percentAll(s string) string {
	const hex = "0123456789ABCDEF"
	out := make([]byte, 0, 3*len(s))
	for i := 0; i < len(s); i++ {
		out = append(out, '%', hex[s[i]>>4], hex[s[i]&15])
	}
	return string(out)
}

// --token-reuse: exclusive (one live session), single-use (one ever),
// shared (Nova's old behaviour).
func TestTokenReuse(t *testing.T) {
	b := startBackend(t, echo)
	var opened int64 // the sessions that reached the host so far, every subtest's
	for _, tc := range []struct {
		policy             reuse.Policy
		concurrent, reopen int
	}{
		{reuse.Exclusive, 403, 101},
		{reuse.SingleUse, 403, 403},
		{reuse.Shared, 101, 101},
	} {
		t.Run(tc.policy.String(), func(t *testing.T) {
			p := startProxy(t, func(cfg *loop.Config) { cfg.Reuse = reuse.NewLocalGuard(tc.policy, nil) })
			tok := p.mint(b.port(), nil)
			first := open(t, p.addr, req{token: tok})
			if c := dial(t, p.addr, req{token: tok}); c.resp.StatusCode != tc.concurrent {
				t.Fatalf("while the first is live: %d, want %d", c.resp.StatusCode, tc.concurrent)
			}
			opened++ // first
			if tc.concurrent == 101 {
				opened++
			}
			// A session is up once the proxy's connect completed, which can
			// be before the host's Accept counts it.
			testutil.WaitFor(t, "the host to count the sessions opened", func() bool { return b.accepts.Load() == opened })
			accepts := opened
			first.conn.Close()
			live := int64(0)
			if tc.concurrent == 101 {
				live = 1 // the second session of the shared policy is still open
			}
			testutil.WaitFor(t, "first closed", func() bool { return p.srv.Active() == live })
			if c := dial(t, p.addr, req{token: tok}); c.resp.StatusCode != tc.reopen {
				t.Fatalf("after the first closed: %d, want %d", c.resp.StatusCode, tc.reopen)
			}
			if tc.reopen == 403 && b.accepts.Load() != accepts {
				t.Fatal("a refused reuse connected to the compute host")
			}
			if tc.reopen == 101 {
				opened++
			}
		})
	}
}

// Origin rules through the proxy: Host match with ports and case, IPv6,
// --allowed-origins, and forwarding headers only from --trusted-proxies.
func TestOriginThroughProxy(t *testing.T) {
	b := startBackend(t, echo)
	allowed, _ := policy.ParseAllowedOrigins("console.example.com, https://portal.example.com")
	trusted, _ := policy.ParseTrustedProxies("127.0.0.0/8")
	untrusted, _ := policy.ParseTrustedProxies("10.0.0.0/8")
	plain := startProxy(t, func(cfg *loop.Config) { cfg.Origins.Allowed = allowed; cfg.Trusted = untrusted })
	behindLB := startProxy(t, func(cfg *loop.Config) { cfg.Origins.Allowed = allowed; cfg.Trusted = trusted })
	tests := []struct {
		name    string
		p       *proxy
		headers map[string]string
		status  int
	}{
		{"no origin", plain, nil, 101},
		{"same host and port", plain, map[string]string{"Origin": "http://" + plain.addr}, 101},
		{"upper-case host", plain, map[string]string{"Host": "LOCALHOST:1", "Origin": "http://localhost:1"}, 101},
		{"other port", plain, map[string]string{"Host": "localhost:1", "Origin": "http://localhost:2"}, 403},
		{"https origin over plain", plain, map[string]string{"Origin": "https://" + plain.addr}, 403},
		{"allowed host, any port", plain, map[string]string{"Origin": "http://console.example.com:8080"}, 101},
		{"suffix trick", plain, map[string]string{"Origin": "http://console.example.com.evil.net"}, 403},
		{"prefix trick", plain, map[string]string{"Origin": "http://evilconsole.example.com"}, 403},
		{"null", plain, map[string]string{"Origin": "null"}, 403},
		{"trailing slash", plain, map[string]string{"Origin": "http://" + plain.addr + "/"}, 403},
		{"full-origin entry needs https", plain, map[string]string{"Origin": "https://portal.example.com"}, 403},
		{"untrusted X-Forwarded-Proto ignored", plain, map[string]string{"Origin": "https://portal.example.com", "X-Forwarded-Proto": "https"}, 403},
		{"trusted X-Forwarded-Proto", behindLB, map[string]string{"Origin": "https://portal.example.com", "X-Forwarded-Proto": "https"}, 101},
		{"trusted Forwarded proto", behindLB, map[string]string{"Origin": "https://portal.example.com", "Forwarded": "for=192.0.2.1;proto=https"}, 101},
		{"trusted proxy says http", behindLB, map[string]string{"Origin": "https://portal.example.com", "X-Forwarded-Proto": "http"}, 403},
		{"conflicting forwarding headers", behindLB, map[string]string{"X-Forwarded-Proto": "http", "Forwarded": "proto=https"}, 400},
		{"IPv6 host", plain, map[string]string{"Host": "[::1]:6080", "Origin": "http://[0::1]:6080"}, 101},
		{"IPv6 other host", plain, map[string]string{"Host": "[::1]:6080", "Origin": "http://[::2]:6080"}, 403},
	}
	for _, tc := range tests {
		tok := tc.p.mint(b.port(), nil)
		if c := dial(t, tc.p.addr, req{token: tok, headers: tc.headers}); c.resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, c.resp.StatusCode, tc.status)
		}
	}
}

// The proxy listens on IPv6 too.
func TestIPv6Listener(t *testing.T) {
	if _, err := netip.ParseAddr("::1"); err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, func(cfg *loop.Config) { cfg.Listen = "[::1]:0" })
	b := startBackend(t, echo)
	c := open(t, p.addr, req{token: p.mint(b.port(), nil)})
	c.send(2, []byte("v6"))
	if string(c.readData(2)) != "v6" {
		t.Fatal("no echo over IPv6")
	}
}

// The session's peer is the address the client connected from, IPv4 and
// IPv6 alike (gnet's accept converts the kernel's address itself: no
// per-accept getsockopt).
func TestPeerAddress(t *testing.T) {
	b := startBackend(t, echo)
	for _, tc := range []struct{ listen, from string }{
		{"127.0.0.1:0", "127.0.0.7"},
		{"[::1]:0", "::1"},
	} {
		p := startProxy(t, func(cfg *loop.Config) { cfg.Listen = tc.listen })
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(tc.from)}}
		conn, err := d.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		c := upgrade(t, conn, p.addr, req{token: p.mint(b.port(), nil)})
		c.send(2, []byte("hi"))
		if string(c.readData(2)) != "hi" {
			t.Fatalf("%s: no echo", tc.listen)
		}
		ss := p.srv.Sessions()
		if len(ss) != 1 || ss[0].Peer != netip.MustParseAddr(tc.from) {
			t.Fatalf("%s: sessions %+v, want one from %s", tc.listen, ss, tc.from)
		}
	}
}

// Nova's scheme rule on top of the Origin rules: a record's access_url_base
// (http/ws or https/wss) must fit the Origin's scheme; a client without an
// Origin is not a browser and is not checked. A refusal is a 403 counted as
// origin_refused and never reaches the compute host.
func TestAccessURLBaseScheme(t *testing.T) {
	b := startBackend(t, echo)
	trusted, _ := policy.ParseTrustedProxies("127.0.0.0/8")
	p := startProxy(t, func(cfg *loop.Config) { cfg.Trusted = trusted })
	plainOrigin := map[string]string{"Origin": "http://" + p.addr}
	tlsOrigin := map[string]string{"Origin": "https://" + p.addr, "X-Forwarded-Proto": "https"}
	tests := []struct {
		name, base string
		headers    map[string]string
		status     int
	}{
		{"no access_url_base", "", plainOrigin, 101},
		{"http base, http origin", "http://console.example.com:6080/vnc_lite.html", plainOrigin, 101},
		{"ws base, http origin", "ws://console.example.com:6083/", plainOrigin, 101},
		{"https base, https origin", "https://console.example.com:6080/vnc_lite.html", tlsOrigin, 101},
		{"wss base, https origin", "wss://console.example.com:6083/", tlsOrigin, 101},
		{"https base, no origin", "https://console.example.com:6080/vnc_lite.html", nil, 101},
		{"https base, http origin", "https://console.example.com:6080/vnc_lite.html", plainOrigin, 403},
		{"http base, https origin", "http://console.example.com:6080/vnc_lite.html", tlsOrigin, 403},
		{"wss base, http origin", "wss://console.example.com:6083/", plainOrigin, 403},
		{"base without a scheme", "console.example.com:6080/vnc_lite.html", plainOrigin, 403},
	}
	refused, upgraded := 0, int64(0)
	for _, tc := range tests {
		// The backend counts an accept a moment after the proxy's 101:
		// settle the count of earlier sessions first.
		testutil.WaitFor(t, "the compute host's accepts of earlier sessions", func() bool { return b.accepts.Load() == upgraded })
		tok := p.mint(b.port(), func(r *record) { r.AccessURLBase = tc.base })
		c := dial(t, p.addr, req{token: tok, headers: tc.headers})
		if c.resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, c.resp.StatusCode, tc.status)
		}
		if c.resp.StatusCode == 101 {
			upgraded++
		}
		if tc.status == 403 {
			refused++
		}
	}
	// Every connection the host got belongs to an upgraded session.
	testutil.WaitFor(t, "the compute host's accepts", func() bool { return b.accepts.Load() >= upgraded })
	if got := b.accepts.Load(); got != upgraded {
		t.Errorf("the compute host got %d connections for %d upgraded sessions: a refused client reached it", got, upgraded)
	}
	if m := metricsText(p); !strings.Contains(m, `consoleproxy_sessions_total{result="origin_refused"} `+strconv.Itoa(refused)) {
		t.Errorf("origin_refused not counted %d times", refused)
	}
}
