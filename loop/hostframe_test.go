//go:build linux

package loop

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/relay"
)

// fakeConn is a gnet.Conn whose socket takes nothing: every byte written
// stays in its outbound buffer. Only the methods a host frame's path and
// the sweeper's check call are implemented.
type fakeConn struct {
	gnet.Conn
	mu   sync.Mutex
	held int
}

func (f *fakeConn) Write(b []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.held += len(b)
	return len(b), nil
}

func (f *fakeConn) OutboundBuffered() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.held
}

func (f *fakeConn) Flushed() uint64 { return 0 }

// AsyncWrite holds b as Write does (the sweeper's ping).
func (f *fakeConn) AsyncWrite(b []byte, _ gnet.AsyncCallback) error {
	_, err := f.Write(b)
	return err
}

// Finding 10 of issue 12: host frames the client has not taken count what
// they hold (headers, base64's growth), not only the host's bytes, against
// --max-buffered-bytes. The host's bytes go through a real relay poller's
// read; the client's socket takes nothing, so what the session counts must
// be every frame byte it wrote.
func TestHostFramesChargeWireBytes(t *testing.T) {
	s := &Server{cfg: Config{Now: time.Now}, metrics: newServerMetrics()} // what a frame's accounting reads
	r, err := relay.New(relay.Config{Pollers: 1})                         // undriven: its own goroutine reads
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, tc := range []struct {
		name   string
		base64 bool
		n      int
	}{{"binary, small", false, 100}, {"binary, 32 KiB", false, 32 << 10}, {"base64", true, 30000}} {
		t.Run(tc.name, func(t *testing.T) {
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fds[1])
			fc := &fakeConn{}
			ss := &session{srv: s, c: fc, raw: fc, base64: tc.base64}
			ss.phase.Store(int32(phaseRelaying))
			ss.host = r.Attach(fds[0], ss, -1)
			defer ss.host.Close()
			if _, err := unix.Write(fds[1], bytes.Repeat([]byte{'x'}, tc.n)); err != nil {
				t.Fatal(err)
			}
			ss.host.Start()
			testutil.WaitFor(t, "the host's bytes framed", func() bool { return ss.down.Load() == int64(tc.n) })
			held := int64(fc.OutboundBuffered())
			if held <= int64(tc.n) {
				t.Fatalf("%d frame bytes for %d host bytes: no header counted in the fake", held, tc.n)
			}
			testutil.WaitFor(t, "the session to count every frame byte it holds", func() bool { return ss.host.Buffered() == held })
		})
	}
}
