//go:build linux

package e2e

import (
	"bytes"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/loop"
)

// idleMemSessions is how many sessions TestIdleMemoryAfterTraffic holds:
// enough that the per-session figure is not noise (4 descriptors each in
// this one process: 8,000 of the 20,000 allowed).
const idleMemSessions = 2000

// idleMemWarm is how many sessions carry data before the measure starts:
// enough to reach every relay poller (they take sessions in turn).
const idleMemWarm = 16

// idleMemMargin is how much more live heap, in bytes, an idle session may
// hold after it carried one echo than before it carried any: what traffic
// may leave behind: slack for the runtime's own bookkeeping and the pools'
// per-P caches, far below any buffer. Buffers that data passed through
// (gnet's, relay's, the in-flight frame queue's) go back to their pools once
// the session is drained.
const idleMemMargin = 64

// TestIdleMemoryAfterTraffic opens idleMemSessions sessions in this process,
// measures the live heap (after a GC) per session before any data and again
// after one echo on each, and asserts that the echo left no more than
// idleMemMargin per session behind. The clients and the echo backend use
// small fixed buffers so that the figure is the proxy's.
func TestIdleMemoryAfterTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("scale test")
	}
	b := startBackend(t, smallEcho)
	p := startProxy(t, func(c *loop.Config) { c.PingInterval = 0 })
	toks := make([]string, idleMemSessions)
	lines := make([]string, idleMemSessions)
	for i := range toks {
		toks[i] = "idlemem-" + strconv.Itoa(i)
		lines[i] = tokenLine(toks[i], b.port())
	}
	for i := 0; i < idleMemWarm; i++ {
		lines = append(lines, tokenLine("idlemem-warm-"+strconv.Itoa(i), b.port()))
	}
	if err := os.WriteFile(p.path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.store.Reload(); err != nil {
		t.Fatal(err)
	}
	// A few sessions carry data first, so what each event loop and relay
	// poller keeps for itself (a read buffer) is in the base figure, not
	// charged to the sessions measured.
	for i := 0; i < idleMemWarm; i++ {
		c := leanOpen(t, p.addr, "idlemem-warm-"+strconv.Itoa(i))
		defer c.Close()
		leanEcho(t, c, byte(i))
	}
	base := liveHeap()
	a0 := allocStats()
	conns := make([]net.Conn, 0, idleMemSessions)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for _, tok := range toks {
		conns = append(conns, leanOpen(t, p.addr, tok))
	}
	testutil.WaitFor(t, "every host connected", func() bool { return b.accepts.Load() == idleMemSessions+idleMemWarm })
	before := liveHeap()
	a1 := allocStats()
	for i, c := range conns {
		leanEcho(t, c, byte(i))
	}
	after := liveHeap()
	a2 := allocStats()
	t.Logf("allocated per session (this process, clients included): opening %s, one echo %s", a1.since(a0, idleMemSessions), a2.since(a1, idleMemSessions))
	per := func(h uint64) float64 { return (float64(h) - float64(base)) / idleMemSessions }
	t.Logf("%d sessions: live heap per session %.0f B before any data, %.0f B after one echo each",
		idleMemSessions, per(before), per(after))
	if d := per(after) - per(before); d > idleMemMargin {
		t.Errorf("one echo left %.0f B per idle session behind (margin %d B)", d, idleMemMargin)
	}
}

// liveHeap is the heap's live bytes after two collections (the second frees
// what the first's finalizers and pool victims released).
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// smallEcho echoes with a 64-byte buffer (io.Copy's 32 KiB one per
// session would drown the proxy's figure).
func smallEcho(_ *backend, c net.Conn) {
	defer c.Close()
	var buf [64]byte
	for {
		n, err := c.Read(buf[:])
		if err != nil {
			return
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
	}
}

// leanOpen upgrades a connection holding no buffer of its own afterwards.
func leanOpen(t testing.TB, addr, tok string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	r := "GET /?token=" + tok + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: binary\r\n\r\n"
	if _, err := io.WriteString(c, r); err != nil {
		t.Fatal(err)
	}
	var head []byte
	var one [1]byte
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		if _, err := c.Read(one[:]); err != nil {
			t.Fatalf("reading the answer: %v", err)
		}
		head = append(head, one[0])
	}
	if !bytes.HasPrefix(head, []byte("HTTP/1.1 101 ")) {
		t.Fatalf("answer %q", head)
	}
	return c
}

// leanEcho sends one byte in a masked binary frame and reads it back.
func leanEcho(t testing.TB, c net.Conn, v byte) {
	t.Helper()
	if _, err := c.Write(maskedFrame(true, ws.OpBinary, []byte{v})); err != nil {
		t.Fatal(err)
	}
	var got [3]byte // an unmasked binary frame of one byte
	if _, err := io.ReadFull(c, got[:]); err != nil {
		t.Fatal(err)
	}
	if got[0] != 0x82 || got[1] != 1 || got[2] != v {
		t.Fatalf("echo %v, want %s", got, strconv.Itoa(int(v)))
	}
}

// allocs is the process's cumulative heap allocation count and bytes.
type allocs struct{ n, bytes uint64 }

func allocStats() allocs {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return allocs{m.Mallocs, m.TotalAlloc}
}

// since is what was allocated per session from a0 to a.
func (a allocs) since(a0 allocs, sessions int) string {
	return strconv.FormatFloat(float64(a.n-a0.n)/float64(sessions), 'f', 1, 64) + " allocations, " +
		strconv.FormatFloat(float64(a.bytes-a0.bytes)/float64(sessions), 'f', 0, 64) + " B"
}
