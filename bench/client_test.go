package bench

import (
	"encoding/binary"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

// testLoop is a loop with no epoll set, for feeding parsers directly; its
// session writes to one end of a socket pair, the other end returned.
func testLoop(t *testing.T, ws bool) (*loop, *conn, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	cl := &Client{wire: newWire(ws, 64, 4096), churnMessages: 1, cfg: ClientConfig{TokenPool: 1}}
	l := &loop{cl: cl, conns: make([]*conn, 1<<16), rtt: NewHistogram(), hs: NewHistogram(),
		errs: map[string]int{}, scratch: make([]byte, len(cl.wire.msgFrame))}
	c := &conn{fd: fds[0], s: Session{Mode: ModeEcho}, state: stOpen}
	l.conns[c.fd] = c
	return l, c, fds[1]
}

// serverFrame is an unmasked binary frame, as a proxy sends.
func serverFrame(op byte, p []byte) []byte {
	h := []byte{0x80 | op, 0}
	switch n := len(p); {
	case n < 126:
		h[1] = byte(n)
	case n < 1<<16:
		h[1] = 126
		h = binary.BigEndian.AppendUint16(h, uint16(n))
	default:
		h[1] = 127
		h = binary.BigEndian.AppendUint64(h, uint64(n))
	}
	return append(h, p...)
}

// echoStream is k echo messages, re-framed as a proxy may: frames that cut
// across message boundaries, one with a 16-bit and one with a 64-bit length.
func echoStream(k int) []byte {
	var msgs []byte
	for i := range k {
		m := make([]byte, 64)
		binary.LittleEndian.PutUint64(m, uint64(i+1)*uint64(time.Microsecond))
		msgs = append(msgs, m...)
	}
	var out []byte
	for _, size := range []int{5, 100, 300, 70000} {
		n := min(size, len(msgs))
		out = append(out, serverFrame(2, msgs[:n])...)
		msgs = msgs[n:]
	}
	return append(out, serverFrame(2, msgs)...)
}

// TestParseSplit feeds a re-framed echo stream in every two-piece split and
// checks that each message is counted once.
func TestParseSplit(t *testing.T) {
	stream := echoStream(1200)
	for cut := 0; cut <= len(stream); cut += 97 {
		l, c, _ := testLoop(t, true)
		l.parseFrames(c, stream[:cut])
		l.parseFrames(c, stream[cut:])
		if c.replies != 1200 || c.recv != 1200*64 || c.state != stOpen {
			t.Fatalf("cut %d: replies %d recv %d state %d, errs %v", cut, c.replies, c.recv, c.state, l.errs)
		}
	}
}

// TestPingPong: a ping gets a masked pong with its payload; a close ends the session.
func TestPingPong(t *testing.T) {
	l, c, peer := testLoop(t, true)
	l.parseFrames(c, serverFrame(9, []byte("hi")))
	buf := make([]byte, 64)
	n, _ := unix.Read(peer, buf)
	got := append([]byte(nil), buf[:n]...)
	if n != 8 || got[0] != 0x8a || got[1] != 0x82 {
		t.Fatalf("pong % x", got)
	}
	maskBytes(got[6:], 0)
	if string(got[6:]) != "hi" {
		t.Fatalf("pong payload %q", got[6:])
	}
	l.parseFrames(c, serverFrame(8, []byte{3, 232}))
	if c.state != stDone || l.errs["closed by proxy"] != 1 {
		t.Fatalf("after close: state %d errs %v", c.state, l.errs)
	}
}

// TestStreamPayload checks the frame-aware byte count against a naive walk.
func TestStreamPayload(t *testing.T) {
	w := newWire(true, 64, 1000)
	var naive int64
	for x := int64(0); x < 5*int64(w.unit); x++ {
		if got := w.streamPayload(x); got != naive {
			t.Fatalf("payload(%d) = %d, want %d", x, got, naive)
		}
		if x%int64(w.unit) >= int64(w.unitHdr) {
			naive++
		}
	}
}

// TestNoAllocs: sending a message, parsing replies and pumping the stream do
// not allocate.
func TestNoAllocs(t *testing.T) {
	if testutil.Race {
		t.Skip("the race detector allocates")
	}
	l, c, peer := testLoop(t, true)
	stream := echoStream(50)
	drain := make([]byte, 1<<20)
	allocs := testing.AllocsPerRun(200, func() {
		l.sendMessage(c)
		l.parseFrames(c, stream)
		l.stream = streamOn
		l.pump(c)
		l.stream = streamOff
		for {
			if n, _ := unix.Read(peer, drain); n <= 0 {
				break
			}
		}
	})
	if allocs != 0 || c.state != stOpen {
		t.Fatalf("%.1f allocations per message round, state %d, errs %v", allocs, c.state, l.errs)
	}
}

// FuzzParseFrames: whatever a proxy sends, the client's frame parser counts
// the same payload bytes and replies, and ends in the same state, whether
// the bytes arrive whole or in two pieces; it never panics.
func FuzzParseFrames(f *testing.F) {
	f.Add(echoStream(3), uint16(7))
	f.Add(serverFrame(9, []byte("ping")), uint16(1))
	f.Add(append(serverFrame(2, []byte("ab")), 0x88, 0x00), uint16(3))
	f.Add([]byte{0x82, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, uint16(4))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		type outcome struct {
			recv, replies int64
			state         connState
		}
		run := func(parts ...[]byte) outcome {
			l, c, _ := testLoop(t, true)
			for _, p := range parts {
				if !l.parseFrames(c, p) {
					break
				}
			}
			return outcome{c.recv, c.replies, c.state}
		}
		k := int(cut) % (len(data) + 1)
		if whole, split := run(data), run(data[:k], data[k:]); whole != split {
			t.Fatalf("whole %+v, split at %d %+v", whole, k, split)
		}
	})
}

// TestRaiseProcs: the client leaves Ps beyond its loops for the backend's
// goroutines (the loops plus the CPUs), and never lowers GOMAXPROCS. (raiseProcs, not
// NewClient: a client's locked loop threads exit with it, and their CPU
// would then be missing from TestProcCPU's per-thread sum.)
func TestRaiseProcs(t *testing.T) {
	prev := runtime.GOMAXPROCS(1)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	raiseProcs(2)
	want := 2 + runtime.NumCPU()
	if got := runtime.GOMAXPROCS(0); got != want {
		t.Errorf("GOMAXPROCS %d for a client of 2 loops, want %d", got, want)
	}
	runtime.GOMAXPROCS(want + 3)
	raiseProcs(1)
	if got := runtime.GOMAXPROCS(0); got != want+3 {
		t.Errorf("GOMAXPROCS %d, want %d (never lowered)", got, want+3)
	}
}
