//go:build linux

package loop

import (
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/consoleproxy/consoleproxy/relay"
)

// fakeConn is a gnet.Conn whose socket takes nothing: every byte written
// stays in its outbound buffer. Only the methods queue calls are
// implemented.
type fakeConn struct {
	gnet.Conn
	wrote []int
	held  int
}

func (f *fakeConn) Write(b []byte) (int, error) {
	f.wrote = append(f.wrote, len(b))
	f.held += len(b)
	return len(b), nil
}

func (f *fakeConn) OutboundBuffered() int { return f.held }

func (f *fakeConn) Flushed() uint64 { return 0 }

// Finding 10 of issue 12: a host frame the client has not taken counts
// what it holds (header, base64's growth), not only the host's bytes,
// against --max-buffered-bytes.
func TestHostFramesChargeWireBytes(t *testing.T) {
	s := &Server{cfg: Config{Now: time.Now}, metrics: newServerMetrics()} // what a frame's accounting reads
	r, err := relay.New(relay.Config{Pollers: 1})                         // undriven: the test's goroutine stands in for the loop
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
			b := relay.TestBuffer(tc.n)
			ss.host.Charge(tc.n) // what the poller counts when it reads
			ss.HostData(b, tc.n)
			if len(fc.wrote) != 1 {
				t.Fatalf("%d frames written, want 1", len(fc.wrote))
			}
			if got, want := ss.host.Buffered(), int64(fc.wrote[0]); got != want {
				t.Fatalf("counted %d bytes for a %d-byte frame carrying %d host bytes", got, want, tc.n)
			}
		})
	}
}
