//go:build linux

package relay

import (
	"bytes"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/valyala/bytebufferpool"
)

// Commands from many goroutines at once share eventfd wake-ups (only the
// one that finds the queue empty writes it); none may be left behind: every
// socket started and then closed from its own goroutine reaches the poller,
// and each host sees its connection end.
func TestPollerCommandsNotLost(t *testing.T) {
	r, err := New(Config{Pollers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const n = 200
	hosts := make([]io.ReadCloser, n)
	conns := make([]*Conn, n)
	for i := range conns {
		fd, host := pair(t)
		hosts[i] = host
		conns[i] = r.Attach(fd, newTestSink(true), -1)
	}
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Start()
			c.Close()
		}()
	}
	wg.Wait()
	for i, h := range hosts {
		if err := h.(interface{ SetReadDeadline(time.Time) error }).SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, err := h.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("host %d: %v, want EOF (its close command was lost)", i, err)
		}
		h.Close()
	}
}

// capSink records the capacity of each buffer HostData hands over.
type capSink struct {
	testSink
	caps chan int
}

func (s *capSink) HostData(b *bytebufferpool.ByteBuffer, n int) {
	c := cap(b.B) // before HostData gives b back
	s.testSink.HostData(b, n)
	s.caps <- c // once the bytes are in s.data
}

// A small read reaches the sink in a buffer of about its size, not the
// poller's whole read buffer (an idle session after traffic, issue 14); a
// big one in the read buffer itself, uncopied; both carry the host's bytes.
func TestSmallReadsHoldSmallBuffers(t *testing.T) {
	r, err := New(Config{Pollers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	fd, host := pair(t)
	defer host.Close()
	s := &capSink{testSink: *newTestSink(true), caps: make(chan int, 64)}
	s.conn = r.Attach(fd, s, -1)
	s.conn.Start()
	defer s.conn.Close()
	for _, tc := range []struct {
		n        int
		min, max int
	}{{1, 0, Headroom + copyMax}, {copyMax, 0, Headroom + copyMax}, {DefaultReadSize, Headroom + DefaultReadSize, 1 << 30}} {
		before := len(s.received())
		if _, err := host.Write(bytes.Repeat([]byte{byte(tc.n)}, tc.n)); err != nil {
			t.Fatal(err)
		}
		got := 0
		for got < tc.n {
			select {
			case c := <-s.caps:
				if tc.n <= copyMax && (c < tc.min || c > tc.max) {
					t.Fatalf("a %d-byte read came in a buffer of %d", tc.n, c)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%d of %d bytes arrived (sink has %d, caps %d)", got, tc.n, len(s.received()), len(s.caps))
			}
			got = len(s.received()) - before
		}
		if !bytes.Equal(s.received()[before:], bytes.Repeat([]byte{byte(tc.n)}, tc.n)) {
			t.Fatalf("%d-byte read: the sink got other bytes", tc.n)
		}
	}
}
