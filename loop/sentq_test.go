//go:build linux

package loop

import (
	"testing"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/relay"
)

// fakeConn is a gnet.Conn that takes AsyncWrites without a loop: only the
// methods queue calls are implemented.
type fakeConn struct {
	gnet.Conn
	wrote []int
}

func (f *fakeConn) AsyncWrite(b []byte, _ gnet.AsyncCallback) error {
	f.wrote = append(f.wrote, len(b))
	return nil
}

// Finding 10 of issue 12: a host frame in flight to the client counts what
// it holds (header, base64's growth), not only the host's bytes, against
// --max-buffered-bytes.
func TestHostFramesChargeWireBytes(t *testing.T) {
	r, err := relay.New(relay.Config{Pollers: 1})
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
			ss := &session{c: fc, base64: tc.base64}
			ss.onSentFn = ss.onSent
			ss.host = r.Attach(fds[0], ss, -1)
			defer ss.host.Close()
			b := relay.TestBuffer(tc.n)
			ss.host.Charge(tc.n) // what the poller counts when it reads
			ss.HostData(b, tc.n)
			if len(fc.wrote) != 1 {
				t.Fatalf("%d frames written, want 1", len(fc.wrote))
			}
			if got, want := ss.host.Buffered(), int64(fc.wrote[0]); got != want {
				t.Fatalf("held %d bytes for a %d-byte frame carrying %d host bytes", got, want, tc.n)
			}
		})
	}
}

// The in-flight queue keeps AsyncWrite order across growth and gives its
// ring back once drained: an idle session holds none (issue 14).
func TestSentQueueOrderAndRelease(t *testing.T) {
	var q sentQueue
	for round := 0; round < 3; round++ {
		for i := 0; i < 37; i++ { // past three growths: 4, 8, 16, 32, 64
			q.push(pendingFrame{n: i})
		}
		for i := 0; i < 37; i++ {
			f, ok := q.pop()
			if !ok || f.n != i {
				t.Fatalf("round %d: pop %d = %v, %v", round, i, f.n, ok)
			}
		}
		if _, ok := q.pop(); ok {
			t.Fatal("popped from an empty queue")
		}
		if q.ring != nil {
			t.Fatalf("round %d: a drained queue holds a ring of %d", round, len(q.ring.f))
		}
	}
	q.push(pendingFrame{n: 1})
	q.push(pendingFrame{n: 2})
	if f, ok := q.popNewest(); !ok || f.n != 2 {
		t.Fatalf("popNewest = %v, %v", f.n, ok)
	}
	if f, ok := q.popNewest(); !ok || f.n != 1 || q.ring != nil {
		t.Fatalf("popNewest = %v, %v; ring %v", f.n, ok, q.ring)
	}
}

// A burst through a drained queue takes its ring from the pool: no
// allocation per burst once warm.
func TestSentQueueNoAllocations(t *testing.T) {
	if testutil.Race {
		t.Skip("allocation counts are not meaningful under -race")
	}
	var q sentQueue
	burst := func() {
		for i := 0; i < 10; i++ {
			q.push(pendingFrame{n: i})
		}
		for i := 0; i < 10; i++ {
			q.pop()
		}
	}
	burst()
	if a := testing.AllocsPerRun(100, burst); a != 0 {
		t.Errorf("%v allocations per burst", a)
	}
}
