package relay

import (
	"io"
	"sync"
	"testing"
	"time"
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
		conns[i] = r.Attach(fd, newTestSink(true))
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
