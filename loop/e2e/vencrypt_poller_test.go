//go:build linux

package e2e

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/loop"
	"github.com/consoleproxy/consoleproxy/relay"
	"github.com/consoleproxy/consoleproxy/relay/rfb"
)

// The VeNCrypt leg on the relay pollers (relay.AttachTLS): no goroutine or
// socket pair per session, and the same pushback as a plain host.

// vencryptIdleSessions is how many idle VeNCrypt sessions
// TestVeNCryptIdleSessionsFlat adds (issue 13: at least 300).
const vencryptIdleSessions = 300

// fdSlack is the descriptors the proxy may open beside its sessions while
// they are counted (the metrics scrapes' connections).
const fdSlack = 16

// An idle VeNCrypt session holds no goroutine and two descriptors (the
// client's socket and the compute host's): the TLS toward the host runs on
// the relay pollers, not on a bridge with a socket pair. The proxy's
// go_goroutines stays flat (at most one per ten sessions) while 300 are
// added, each echoing through the host's TLS, and its open descriptors grow
// by two per session.
func TestVeNCryptIdleSessionsFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("300 VeNCrypt sessions")
	}
	const n = vencryptIdleSessions
	k := newPKI(t)
	b := startBackend(t, vencryptHost(t, k, 0))
	toks, lines := make([]string, 0, n+1), make([]string, 0, n+1)
	for i := 0; i <= n; i++ {
		toks = append(toks, "vencrypt-idle-"+strconv.Itoa(i))
		lines = append(lines, tokenLine(toks[i], b.port()))
	}
	p := startBinary(t, lines, "--ping-interval", "0", "--vnc-auth-schemes", "vencrypt",
		"--vencrypt-ca-certs", k.caFile, "--vencrypt-client-cert", k.clientFile, "--vencrypt-client-key", k.clientKeyFile)
	goroutines := func() float64 {
		_, body := httpGet(t, "http://"+p.metrics+"/metrics")
		return promValue(t, body, "go_goroutines")
	}
	pid := p.cmd.Process.Pid
	openEcho := func(i int) *wsClient {
		c := open(t, p.addr, req{token: toks[i], protocol: "binary"})
		rfbAnswer(t, c, "")
		c.send(ws.OpBinary, []byte{byte(i)})
		if got := c.readData(1); got[0] != byte(i) {
			t.Fatalf("session %d: echo %v", i, got)
		}
		return c
	}
	held := []*wsClient{openEcho(n)} // the first starts what stays (pools, the scrape's connection)
	// The handshake goroutine that served it is gone once idle.
	base := steady(t, "the handshake goroutines to end", goroutines)
	fds := testutil.FDs(t, pid)
	for i := 0; i < n; i++ {
		held = append(held, openEcho(i))
		if m := i + 1; m%50 == 0 {
			if g := goroutines(); g > base+float64(m/10) {
				t.Fatalf("%d idle VeNCrypt sessions: %v goroutines, from %v", m, g, base)
			}
		}
	}
	g := goroutines()
	got := testutil.FDs(t, pid) - fds
	t.Logf("%d idle VeNCrypt sessions: go_goroutines %v → %v, descriptors +%d (%.2f per session)", n, base, g, got, float64(got)/n)
	if g > base+n/10 {
		t.Errorf("%d idle VeNCrypt sessions: %v goroutines, from %v", n, g, base)
	}
	if got > 2*n+fdSlack {
		t.Errorf("%d idle VeNCrypt sessions hold %d more descriptors, want 2 each (+%d slack)", n, got, fdSlack)
	}
	for _, c := range held {
		c.conn.Close()
	}
}

// tlsRecordOverhead is the most a TLS record adds to its plaintext (TLS
// 1.2 with AES-GCM: header 5, explicit nonce 8, tag 16), per 16 KiB.
const tlsRecordOverhead = 29

// A client faster than its VeNCrypt host is pushed back through TCP as
// for a plain host (reading its socket pauses while records are held back
// for the host), never cut: every byte arrives once and in order through
// the host's TLS, and the proxy holds at most loop.MaxHeldUp client bytes
// plus their records' overhead.
func TestVeNCryptUploadPushedBack(t *testing.T) {
	k := newPKI(t)
	release := make(chan struct{})
	got := make(chan []byte, 1)
	b := startBackend(t, vencryptServe(t, k, 0, func(_ *backend, tc *tls.Conn) {
		<-release
		var buf bytes.Buffer
		_, _ = io.Copy(&buf, tc)
		got <- buf.Bytes()
	}))
	sp, err := rfb.New(rfb.Config{Schemes: []rfb.Scheme{rfb.SchemeVeNCrypt}, CAFile: k.caFile,
		CertFile: k.clientFile, KeyFile: k.clientKeyFile})
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, func(cfg *loop.Config) { cfg.Security = sp })
	c := open(t, p.addr, req{token: p.mint(b.port(), nil)})
	rfbAnswer(t, c, "")
	const total = 32 << 20
	most := uploadPushedBack(t, c, p, release, total)
	bound := int64(loop.MaxHeldUp + (loop.MaxHeldUp/(16<<10)+1)*tlsRecordOverhead)
	expectUploadDelivered(t, c, got, total, most, bound)
}

// silentHosts is how many compute hosts that accept and never speak
// TestVeNCryptSilentHostsHoldNoGoroutine holds sessions to.
const silentHosts = 300

// A compute host that accepts and never speaks (a stopped QEMU: the kernel
// still completes the TCP handshake) costs its session no goroutine while
// the proxy waits for its RFB version: the wait is on a relay poller, and a
// handshake goroutine is taken only once the version is in. With 300 such
// sessions waiting, go_goroutines stays flat (at most one per ten) and a
// VeNCrypt client to a working host is still served at once.
func TestVeNCryptSilentHostsHoldNoGoroutine(t *testing.T) {
	if testing.Short() {
		t.Skip("300 connections")
	}
	k := newPKI(t)
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) })
	quiet := startBackend(t, func(_ *backend, c net.Conn) { <-hold; c.Close() })
	good := startBackend(t, vencryptHost(t, k, 0))
	var lines []string
	for i := 0; i < silentHosts; i++ {
		lines = append(lines, tokenLine("silent-"+strconv.Itoa(i), quiet.port()))
	}
	lines = append(lines, tokenLine("good-0", good.port()), tokenLine("good-1", good.port()))
	p := startBinary(t, lines, append([]string{"--ping-interval", "0", "--connect-timeout", "1m"}, vencryptArgs(k)...)...)
	goroutines := func() float64 {
		_, body := httpGet(t, "http://"+p.metrics+"/metrics")
		return promValue(t, body, "go_goroutines")
	}
	openEcho := func(tok string) {
		c := open(t, p.addr, req{token: tok, protocol: "binary"})
		rfbAnswer(t, c, "")
		c.send(ws.OpBinary, []byte("e"))
		if got := string(c.readData(1)); got != "e" {
			t.Fatalf("echo %q", got)
		}
	}
	openEcho("good-0") // starts what stays (pools, the scrape's connection)
	base := steady(t, "the handshake goroutines to end", goroutines)
	for i := 0; i < silentHosts; i++ {
		c := dialRaw(t, p.addr)
		if _, err := io.WriteString(c, req{token: "silent-" + strconv.Itoa(i), protocol: "binary"}.request(p.addr)); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, "the proxy to connect to every silent host", func() bool { return quiet.accepts.Load() >= silentHosts })
	openEcho("good-1")
	g := goroutines()
	t.Logf("go_goroutines %v with 1 VeNCrypt session, %v with %d more waiting for silent hosts", base, g, silentHosts)
	if g > base+silentHosts/10 {
		t.Fatalf("%d sessions waiting for silent compute hosts: %v goroutines, from %v", silentHosts, g, base)
	}
}

// A browser that reads nothing behind a VeNCrypt host that writes as fast
// as it can: the proxy holds at most --max-buffered-bytes plus one read of
// plaintext for it (what crypto/tls has read ahead is bounded apart, by
// relay.MaxTLSReadAhead), the host is pushed back by TCP, and when the
// browser reads again every byte arrives in order.
func TestVeNCryptSlowReaderBounded(t *testing.T) {
	const high, total = 128 << 10, 16 << 20
	k := newPKI(t)
	b := startBackend(t, vencryptServe(t, k, 0, func(bk *backend, tc *tls.Conn) { firehose(total)(bk, tc) }))
	sp, err := rfb.New(rfb.Config{Schemes: []rfb.Scheme{rfb.SchemeVeNCrypt}, CAFile: k.caFile,
		CertFile: k.clientFile, KeyFile: k.clientKeyFile})
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, func(cfg *loop.Config) { cfg.Security, cfg.Relay.HighWater = sp, high })
	c := open(t, p.addr, req{token: p.mint(b.port(), nil)})
	rfbAnswer(t, c, "")
	bound := int64(high + relay.DefaultReadSize)
	testutil.WaitFor(t, "the host to be pushed back", func() bool { return p.srv.Buffered() >= high })
	var most int64
	for i := 0; i < 20; i++ { // a while of not reading: a wrong bound would overshoot
		most = max(most, p.srv.Buffered())
		if most > bound {
			t.Fatalf("the proxy held %d bytes for one session, bound %d", most, bound)
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = c.conn.SetReadDeadline(time.Now().Add(time.Minute))
	expectDownloadDelivered(t, c, b, total, most)
}

// steady waits until two samples in a row are equal (what settles, such
// as a goroutine count once idle workers are gone) and returns the value.
func steady(t *testing.T, what string, sample func() float64) (base float64) {
	t.Helper()
	testutil.WaitFor(t, what, func() bool {
		g := sample()
		if g == base {
			return true
		}
		base = g
		return false
	})
	return base
}
