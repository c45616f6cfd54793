//go:build linux

package e2e

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/loop"
)

// Hostile clients (issue 12): each test reproduces one finding with the
// hostile behaviour itself on real sockets.

// recorder is a compute host that keeps every byte it receives, per
// connection, and reports each connection's bytes once it ends.
type recorder struct {
	done chan []byte
}

func newRecorder(n int) *recorder { return &recorder{done: make(chan []byte, n)} }

func (r *recorder) serve(_ *backend, c net.Conn) {
	defer c.Close()
	var buf bytes.Buffer
	_, _ = io.Copy(&buf, struct{ io.Reader }{c})
	r.done <- buf.Bytes()
}

// patternFrames is frames carrying the pattern from offset off in frames of
// size bytes, count of them, with a ping after every other one.
func patternFrames(off, size, count int) ([]byte, int) {
	var out []byte
	p := make([]byte, size)
	for i := 0; i < count; i++ {
		fillPattern(p, off+i*size)
		out = append(out, maskedFrame(true, ws.OpBinary, p)...)
		if i%2 == 1 {
			out = append(out, maskedFrame(true, ws.OpPing, []byte("are you there"))...)
		}
	}
	return out, size * count
}

// isPatternPrefix reports whether got is the pattern from offset off, cut
// anywhere: bytes lost at the end are fine (the client reset), any other
// byte is one the client never sent.
func isPatternPrefix(got []byte, off int) bool {
	want := make([]byte, len(got))
	fillPattern(want, off)
	return bytes.Equal(got, want)
}

// Finding 1: a client that resets in the middle of a batch of frames and
// pings must never make the host receive bytes it did not send (still-masked
// frame bytes, or a repeat). Each session sends its own stretch of the
// pattern, so a byte from another session shows too.
func TestResetMidBatchHostGetsOnlyClientBytes(t *testing.T) {
	const sessions = 200
	rec := newRecorder(sessions)
	b := startBackend(t, rec.serve)
	p := startProxy(t, nil)
	tokens := make([]string, sessions)
	for i := range tokens {
		tokens[i] = p.mint(b.port(), nil)
	}
	clients := make([]*wsClient, sessions)
	for i := range clients {
		clients[i] = open(t, p.addr, req{token: tokens[i]})
	}
	testutil.WaitFor(t, "hosts connected", func() bool { return b.accepts.Load() == sessions })
	offsets := map[int]bool{}
	for i, c := range clients {
		batch, _ := patternFrames(i<<20, 100, 64)
		offsets[i<<20] = true
		if _, err := c.conn.Write(batch); err != nil {
			t.Fatal(err)
		}
		_ = c.conn.(*net.TCPConn).SetLinger(0)
		c.conn.Close() // RST with the batch still in flight
	}
	bad := 0
	for range sessions {
		var got []byte
		select {
		case got = <-rec.done:
		case <-time.After(30 * time.Second):
			t.Fatal("a host connection never ended")
		}
		if len(got) == 0 {
			continue
		}
		if len(got) < 4 {
			bad++
			continue
		}
		// The first word of the pattern names the session's offset.
		start := int(uint32(got[0])<<24|uint32(got[1])<<16|uint32(got[2])<<8|uint32(got[3])) * 4
		if !offsets[start] || !isPatternPrefix(got, start) {
			bad++
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d hosts received bytes their client never sent", bad, sessions)
	}
	testutil.WaitFor(t, "sessions ended", func() bool { return p.srv.Active() == 0 })
}

// Finding 2: a client that sends pings and reads nothing is pushed back
// through TCP (its writes stall) instead of the proxy queueing every pong.
func TestPingFloodPushedBack(t *testing.T) {
	b := startBackend(t, newRecorder(1).serve)
	p := startProxy(t, nil)
	c := open(t, p.addr, req{token: p.mint(b.port(), nil)})
	_ = c.conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	ping := maskedFrame(true, ws.OpPing, bytes.Repeat([]byte{'p'}, 125))
	batch := bytes.Repeat(ping, 512) // 67 KiB of pings per write
	const limit = 256 << 20
	sent := 0
	for sent < limit {
		_ = c.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
		n, err := c.conn.Write(batch)
		sent += n
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Logf("pushed back after %d MiB of pings", sent>>20)
			return
		}
		if err != nil {
			t.Fatalf("after %d bytes: %v", sent, err)
		}
	}
	t.Fatalf("%d MiB of pings taken from a client that reads nothing: no pushback", sent>>20)
}

// Finding 3: thousands of tiny frames in one read are all relayed, and the
// session goes on.
func TestSmallFrameStorm(t *testing.T) {
	rec := newRecorder(1)
	b := startBackend(t, rec.serve)
	p := startProxy(t, nil)
	c := open(t, p.addr, req{token: p.mint(b.port(), nil)})
	const frames = 5000
	want := make([]byte, frames)
	fillPattern(want, 0)
	var storm []byte
	for i := range frames {
		storm = append(storm, maskedFrame(true, ws.OpBinary, want[i:i+1])...)
	}
	if _, err := c.conn.Write(storm); err != nil {
		t.Fatal(err)
	}
	c.send(ws.OpClose, []byte{3, 232})
	if code, _ := c.expectClose(); code != 1000 {
		t.Fatalf("close %d, want 1000 (the session must survive the storm)", code)
	}
	got := <-rec.done
	if !bytes.Equal(got, want) {
		t.Fatalf("host got %d of %d bytes (or others)", len(got), frames)
	}
}

// Finding 4: a host that closes while its client reads nothing (zero
// window) must not keep the session, its descriptors and its slot forever:
// --write-timeout ends it.
func TestDrainCloseHasDeadline(t *testing.T) {
	b := startBackend(t, firehose(16<<20))
	p := startProxy(t, func(cfg *loop.Config) { cfg.WriteTimeout = time.Second })
	c := open(t, p.addr, req{token: p.mint(b.port(), nil)})
	_ = c.conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	testutil.WaitFor(t, "the host done writing", func() bool { return b.written.Load() > 0 && p.srv.Buffered() > 0 })
	// The client reads nothing; the proxy holds bytes for it with no taker.
	if !testutil.Eventually(20*time.Second, func() bool { return p.srv.Active() == 0 }) {
		t.Fatalf("a session whose client takes nothing is still open 20 s later (write timeout 1 s)")
	}
}

// Finding 5: a client uploading faster than its host reads is pushed back
// through TCP, never cut, and every byte reaches the host once, in order;
// meanwhile the proxy holds a bounded number of bytes for it.
func TestUploadPushedBackNotCut(t *testing.T) {
	release := make(chan struct{})
	got := make(chan []byte, 1)
	slow := func(_ *backend, c net.Conn) {
		defer c.Close()
		// No small SO_RCVBUF here: on loopback (64 KiB MSS) a receive buffer
		// under two segments never advertises a window update, so the
		// sender waits for zero-window probes (seconds) after every stall.
		<-release
		var buf bytes.Buffer
		_, _ = io.Copy(&buf, struct{ io.Reader }{c})
		got <- buf.Bytes()
	}
	b := startBackend(t, slow)
	p := startProxy(t, nil)
	c := open(t, p.addr, req{token: p.mint(b.port(), nil)})
	const total = 32 << 20
	most := uploadPushedBack(t, c, p, release, total)
	expectUploadDelivered(t, c, got, total, most, loop.MaxHeldUp)
}

// uploadPushedBack sends total pattern bytes from c in 32 KiB binary
// frames, each write given a second: the first that times out is the
// client pushed back, which closes release (the host starts reading) and
// samples how many client bytes p held then, returned. An upload the proxy
// cuts, or one never pushed back, fails the test.
func uploadPushedBack(t *testing.T, c *wsClient, p *proxy, release chan struct{}, total int) (most int64) {
	t.Helper()
	const chunk = 32 << 10
	payload := make([]byte, chunk)
	stalled := false
	for off := 0; off < total; off += chunk {
		fillPattern(payload, off)
		frame := maskedFrame(true, ws.OpBinary, payload)
		for len(frame) > 0 {
			_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
			n, err := c.conn.Write(frame)
			frame = frame[n:]
			if errors.Is(err, os.ErrDeadlineExceeded) && !stalled {
				stalled = true
				most = p.srv.HeldUp()
				close(release)
				continue
			}
			if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("after %d bytes: %v (the proxy cut the upload)", off, err)
			}
		}
	}
	if !stalled {
		t.Fatal("the client was never pushed back while its host read nothing")
	}
	return most
}

// expectUploadDelivered closes a pushed-back upload of total pattern bytes
// and checks the host got every one once, in order, and that the proxy held
// at most bound client bytes (most, sampled at the stall).
func expectUploadDelivered(t *testing.T, c *wsClient, got <-chan []byte, total int, most, bound int64) {
	t.Helper()
	c.send(ws.OpClose, []byte{3, 232})
	if code, _ := c.expectClose(); code != 1000 {
		t.Fatalf("close %d, want 1000", code)
	}
	data := <-got
	want := make([]byte, total)
	fillPattern(want, 0)
	if !bytes.Equal(data, want) {
		t.Fatalf("host got %d of %d bytes (or others)", len(data), total)
	}
	if most > bound {
		t.Fatalf("the proxy held %d client bytes for one session, bound %d", most, bound)
	}
	t.Logf("pushed back; the proxy held %d client bytes at the stall (bound %d)", most, bound)
}

// --write-timeout on the host side: a compute host that takes nothing
// while the proxy holds client bytes for it ends the session with 1011
// (host_write_timeout), and the client is told.
func TestHostWriteTimeout(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	b := startBackend(t, func(_ *backend, c net.Conn) { <-hold; c.Close() }) // reads nothing
	p := startProxy(t, func(cfg *loop.Config) { cfg.WriteTimeout = time.Second })
	c := open(t, p.addr, req{token: p.mint(b.port(), nil)})
	frame := maskedFrame(true, ws.OpBinary, make([]byte, 32<<10))
	for sent := 0; sent < 256<<20; sent += len(frame) {
		_ = c.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.conn.Write(frame); err != nil {
			break // pushed back (or already closed)
		}
	}
	_ = c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	if code, _ := c.expectClose(); code != 1011 {
		t.Fatalf("close %d, want 1011 for a host that takes nothing", code)
	}
	testutil.WaitFor(t, "session ended", func() bool { return p.srv.Active() == 0 })
}
