//go:build linux

package e2e

import (
	"bytes"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/loop"
	"github.com/consoleproxy/consoleproxy/relay"
)

// A browser that reads nothing for a while, behind a host that writes as fast
// as it can: the proxy holds at most --max-buffered-bytes (plus one read)
// for it, the host is pushed back by TCP flow control, and when the browser
// reads again every byte arrives in order.
func TestSlowReaderBounded(t *testing.T) {
	const high = 128 << 10
	p := startProxy(t, func(cfg *loop.Config) { cfg.Relay.HighWater = high })
	const total = 64 << 20
	b := startBackend(t, firehose(total))
	c := open(t, p.addr, req{token: p.mint(b.port(), nil)})
	bound := int64(high + relay.DefaultReadSize)
	// The client reads nothing until the host is pushed back: its socket's
	// send queue fills, which only happens once the proxy stops reading.
	var most int64
	testutil.WaitFor(t, "the host pushed back", func() bool {
		most = max(most, p.srv.Buffered())
		hc := b.conn()
		return hc != nil && testutil.PushedBack(t, hc)
	})
	most = max(most, p.srv.Buffered())
	if most > bound {
		t.Fatalf("the proxy held %d bytes for one session, bound %d", most, bound)
	}
	expectDownloadDelivered(t, c, b, total, most)
}

// expectDownloadDelivered checks that host b, streaming total pattern bytes
// to a client that read nothing, was pushed back before the end (most is
// what the proxy held meanwhile, for the log), then reads c to its close
// 1000 and checks every byte arrived once, in order.
func expectDownloadDelivered(t *testing.T, c *wsClient, b *backend, total int, most int64) {
	t.Helper()
	if w := b.written.Load(); w >= int64(total) {
		t.Fatalf("the host wrote all %d bytes to a client reading nothing: no pushback", w)
	}
	t.Logf("while stalled: proxy held at most %d bytes; the host got %d of %d bytes out", most, b.written.Load(), total)
	code, data := c.expectClose()
	if code != 1000 {
		t.Fatalf("close %d", code)
	}
	want := make([]byte, total)
	fillPattern(want, 0)
	if !bytes.Equal(data, want) {
		t.Fatalf("received %d bytes, want %d identical", len(data), total)
	}
}

// 300 sessions opened, used and closed leave no descriptor or goroutine
// behind.
func TestNoLeaks(t *testing.T) {
	p := startProxy(t, nil)
	b := startBackend(t, echo)
	// Warm up: pollers, loops and pools start their goroutines once.
	w := open(t, p.addr, req{token: p.mint(b.port(), nil)})
	w.conn.Close()
	testutil.WaitFor(t, "warm-up closed", func() bool { return p.srv.Active() == 0 })
	fds, gos := testutil.CountFDs(t), runtime.NumGoroutine()
	for i := 0; i < 300; i++ {
		c := open(t, p.addr, req{token: p.mint(b.port(), nil)})
		c.send(2, []byte("ping"))
		c.readData(4)
		if i%2 == 0 {
			c.send(8, []byte{3, 232})
			c.expectClose()
		}
		c.conn.Close()
	}
	testutil.WaitFor(t, "sessions closed", func() bool { return p.srv.Active() == 0 })
	// The backend's own sockets close when the proxy closes them.
	testutil.WaitFor(t, "no descriptor left", func() bool { return testutil.CountFDs(t) <= fds })
	testutil.WaitFor(t, "no goroutine left", func() bool { return runtime.NumGoroutine() <= gos })
}

// A client that sends a burst and leaves (with or without a close frame)
// loses nothing: the host receives every byte, then EOF.
func TestClientBytesDeliveredOnClose(t *testing.T) {
	got := make(chan int64, 2)
	sink := func(_ *backend, c net.Conn) {
		n, _ := io.Copy(io.Discard, struct{ io.Reader }{c})
		got <- n
		c.Close()
	}
	b := startBackend(t, sink)
	p := startProxy(t, nil)
	chunk := make([]byte, 32<<10)
	const total = 32 << 20
	for _, withClose := range []bool{false, true} {
		c := open(t, p.addr, req{token: p.mint(b.port(), nil)})
		frame := maskedFrame(true, 2, chunk)
		for sent := 0; sent < total; sent += len(chunk) {
			if _, err := c.conn.Write(frame); err != nil {
				t.Fatal(err)
			}
		}
		if withClose {
			c.send(8, []byte{3, 232})
		}
		c.conn.(*net.TCPConn).CloseWrite()
		select {
		case n := <-got:
			if n != total {
				t.Fatalf("close frame %v: host got %d of %d bytes", withClose, n, total)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("host never saw EOF")
		}
		c.conn.Close()
	}
}
