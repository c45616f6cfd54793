package e2e

import (
	"strconv"
	"testing"

	"github.com/gobwas/ws"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

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
	var base float64
	waitFor(t, "the handshake goroutines to end", func() bool {
		g := goroutines()
		if g == base {
			return true
		}
		base = g
		return false
	})
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
