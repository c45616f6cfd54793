//go:build linux

package relay

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/valyala/bytebufferpool"
	"golang.org/x/sys/unix"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

// testSink records what a poller tells it. acks controls whether data is
// acknowledged at once (a fast client) or held (a client reading nothing).
type testSink struct {
	mu       sync.Mutex
	conn     *Conn
	data     []byte
	held     []int
	ack      bool
	closed   chan error
	writable chan struct{}
}

func newTestSink(ack bool) *testSink {
	return &testSink{ack: ack, closed: make(chan error, 1), writable: make(chan struct{}, 16)}
}

func (s *testSink) HostData(b *bytebufferpool.ByteBuffer, n int) {
	s.mu.Lock()
	s.data = append(s.data, b.B[Headroom:Headroom+n]...)
	ack := s.ack
	if !ack {
		s.held = append(s.held, n)
	}
	s.mu.Unlock()
	PutBuffer(b)
	if ack {
		s.conn.Ack(n, 0)
	}
}

func (s *testSink) HostWritable()        { s.writable <- struct{}{} }
func (s *testSink) HostClosed(err error) { s.closed <- err }
func (s *testSink) Resample()            {}

func (s *testSink) received() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.data...)
}

// release acknowledges everything held, as a client that starts reading.
func (s *testSink) release() {
	s.mu.Lock()
	held := s.held
	s.held, s.ack = nil, true
	s.mu.Unlock()
	for _, n := range held {
		s.conn.Ack(n, 0)
	}
}

// pair returns a connected socket pair: fd for the relay (non-blocking) and
// the other end as a net.Conn playing the compute host.
func pair(t *testing.T) (int, net.Conn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fds[1]), "host")
	host, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close() })
	return fds[0], host
}

// testDriven makes newRelay's relays driven (TestDriven): each poller is
// polled by a goroutine of the test's, as an event loop would.
var testDriven bool

func newRelay(t *testing.T, cfg Config) *Relay {
	t.Helper()
	cfg.Driven = cfg.Driven || testDriven
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Driven {
		t.Cleanup(r.Close)
		return r
	}
	driveFor(t, r, r.pollers...)
	return r
}

// driveFor drives pollers of r, each on a goroutine of its own, until the
// test ends, and then closes r (after the drivers, as Config.Driven asks).
func driveFor(t *testing.T, r *Relay, pollers ...*Poller) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, p := range pollers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			drive(p, stop)
		}()
	}
	t.Cleanup(func() {
		close(stop)
		wg.Wait()
		r.Close()
	})
}

// drive polls p whenever its descriptor is readable until stop closes:
// what an event loop does with gnet's LoopFD.
func drive(p *Poller, stop <-chan struct{}) {
	fds := []unix.PollFd{{Fd: int32(p.Fd()), Events: unix.POLLIN}}
	for {
		select {
		case <-stop:
			return
		default:
		}
		if n, _ := unix.Poll(fds, 20); n > 0 {
			p.Poll()
		}
	}
}

func pattern(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i * 7 / 3)
	}
	return p
}

// Host bytes reach the sink in order, and an orderly close is reported.
func TestDataThenEOF(t *testing.T) {
	r := newRelay(t, Config{Pollers: 1})
	fd, host := pair(t)
	s := newTestSink(true)
	s.conn = r.Attach(fd, s, -1)
	s.conn.Start()
	want := pattern(1 << 20)
	go func() {
		_, _ = host.Write(want)
		host.Close()
	}()
	select {
	case err := <-s.closed:
		if err != nil {
			t.Fatalf("HostClosed(%v), want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no HostClosed")
	}
	if got := s.received(); !bytes.Equal(got, want) {
		t.Fatalf("received %d bytes, want %d identical", len(got), len(want))
	}
}

// A client that takes nothing stops the relay reading past HighWater (plus
// one read), so the host's writes block in TCP flow control; once the client
// reads, everything arrives, nothing lost.
func TestBackpressurePausesHost(t *testing.T) {
	cfg := Config{Pollers: 1, HighWater: 64 << 10, ReadSize: 16 << 10}
	r := newRelay(t, cfg)
	fd, host := pair(t)
	s := newTestSink(false)
	s.conn = r.Attach(fd, s, -1)
	s.conn.Start()
	want := pattern(8 << 20)
	wrote := make(chan int, 1)
	go func() {
		n, _ := host.Write(want)
		wrote <- n
		host.Close()
	}()
	testutil.WaitFor(t, "pause", s.conn.Paused)
	// A wrong implementation reading on past the pause drains the socket, so
	// the host is never pushed back (this wait fails) or it overshoots.
	testutil.WaitFor(t, "the host pushed back", func() bool { return testutil.PushedBack(t, host) })
	if got := s.conn.Buffered(); got > cfg.HighWater+int64(cfg.ReadSize) {
		t.Fatalf("buffered %d bytes, bound %d", got, cfg.HighWater+int64(cfg.ReadSize))
	}
	select {
	case n := <-wrote:
		t.Fatalf("host wrote all %d bytes while the client read nothing", n)
	default:
	}
	s.release()
	if n := <-wrote; n != len(want) {
		t.Fatalf("host wrote %d", n)
	}
	<-s.closed
	if got := s.received(); !bytes.Equal(got, want) {
		t.Fatalf("received %d bytes, want %d identical", len(got), len(want))
	}
}

// Writes the host does not take are kept and flushed; HostWritable follows.
func TestWriteHeldBackUntilHostReads(t *testing.T) {
	r := newRelay(t, Config{Pollers: 1})
	fd, host := pair(t)
	s := newTestSink(true)
	s.conn = r.Attach(fd, s, -1)
	s.conn.Start()
	want := pattern(4 << 20)
	pending, err := s.conn.Write([][]byte{want[:1000], want[1000:]})
	if err != nil {
		t.Fatal(err)
	}
	if pending == 0 {
		t.Fatal("a 4 MiB write into a socket pair nobody reads cannot complete")
	}
	expectFlushed(t, host, s, want)
	if s.conn.Pending() != 0 {
		t.Fatalf("pending %d", s.conn.Pending())
	}
}

// Close ends the socket: the host sees EOF, the sink hears nothing more,
// writes fail, and no descriptor is left behind.
func TestCloseReleasesSocket(t *testing.T) {
	r := newRelay(t, Config{Pollers: 1})
	before := testutil.CountFDs(t)
	for i := 0; i < 50; i++ {
		fd, host := pair(t)
		s := newTestSink(true)
		s.conn = r.Attach(fd, s, -1)
		if i%2 == 0 {
			s.conn.Start()
		}
		s.conn.Close()
		_ = host.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := host.Read(make([]byte, 1)); n != 0 || err == nil {
			t.Fatalf("host read %d, %v; want EOF", n, err)
		}
		host.Close()
		if _, err := s.conn.Write([][]byte{[]byte("x")}); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("write after close: %v", err)
		}
		select {
		case err := <-s.closed:
			t.Fatalf("HostClosed(%v) after Close", err)
		default:
		}
	}
	testutil.WaitFor(t, "descriptors released", func() bool { return testutil.CountFDs(t) <= before })
}

// A target outside Allowed is refused by resolveRoute, before any socket is
// opened; one inside is connected to on a poller.
func TestDialAllowedTargets(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- struct{}{}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	ctx := context.Background()
	outside, _ := ParseTargets("10.0.0.0/8, 192.0.2.1")
	if _, err := resolveRoute(ctx, "127.0.0.1", port, DialConfig{Timeout: time.Second, Allowed: outside}); !errors.Is(err, ErrTargetRefused) {
		t.Fatalf("outside allowed targets: %v", err)
	}
	if _, err := resolveRoute(ctx, "localhost", port, DialConfig{Timeout: time.Second, Allowed: outside}); !errors.Is(err, ErrTargetRefused) {
		t.Fatalf("name resolving outside allowed targets: %v", err)
	}
	inside, _ := ParseTargets("127.0.0.0/8")
	r := newRelay(t, Config{Pollers: 1})
	out := connectResult(t, r, routeTo(t, ln.Addr().String(), DialConfig{Allowed: inside}), nil, time.Second)
	if out.err != nil {
		t.Fatalf("inside allowed targets: %v", out.err)
	}
	<-accepted
	select {
	case <-accepted:
		t.Fatal("a refused target was connected to")
	default:
	}
	ln.Close()
	out = connectResult(t, r, routeTo(t, ln.Addr().String(), DialConfig{}), nil, time.Second)
	if !errors.Is(out.err, ErrUnreachable) {
		t.Fatalf("closed port: %v", out.err)
	}
}

func TestParseTargets(t *testing.T) {
	got, err := ParseTargets(" 10.0.0.0/8 ,::1, 192.168.1.7/24")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "::1/128", "192.168.1.0/24"}
	for i, p := range got {
		if p.String() != want[i] {
			t.Fatalf("entry %d: %s, want %s", i, p, want[i])
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "1.2.3"} {
		if _, err := ParseTargets(bad); err == nil {
			t.Fatalf("%q accepted", bad)
		}
	}
}

// expectFlushed reads len(want) bytes from host, within a bound, requires
// them to be want, then waits for s's HostWritable: what the host did not
// take at once was kept and flushed.
func expectFlushed(t *testing.T, host net.Conn, s *testSink, want []byte) {
	t.Helper()
	got := make([]byte, len(want))
	_ = host.SetReadDeadline(time.Now().Add(20 * time.Second)) // a bound on a hang, not a timing check
	if _, err := io.ReadFull(host, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("host received different bytes")
	}
	select {
	case <-s.writable:
	case <-time.After(10 * time.Second):
		t.Fatal("no HostWritable")
	}
}

// TestCeilMillis: a deadline under a millisecond away gives a 1 ms epoll
// timeout, not 0 (which made a poller with a paused session spin through
// epoll_wait until the resample tick: 700,000 calls a second under one
// flat-out download).
func TestCeilMillis(t *testing.T) {
	for _, tc := range []struct {
		in   time.Duration
		want int
	}{
		{-time.Second, 0},
		{0, 0},
		{time.Nanosecond, 1},
		{300 * time.Microsecond, 1},
		{time.Millisecond, 1},
		{time.Millisecond + time.Nanosecond, 2},
		{50 * time.Millisecond, 50},
	} {
		if got := ceilMillis(tc.in); got != tc.want {
			t.Errorf("ceilMillis(%v) = %d, want %d", tc.in, got, tc.want)
		}
	}
}
