//go:build linux

package relay

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/valyala/bytebufferpool"
	"golang.org/x/sys/unix"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/internal/testutil/pki"
	"github.com/consoleproxy/consoleproxy/relay/tlsrec"
)

// tlsLeg is a VeNCrypt-style TLS leg on real loopback TCP: the proxy's
// client, handshaken over a blocking net.Conn, and the compute host's TLS
// server. hostFirst is written by the host right after the handshake, read
// ahead by crypto/tls before the client is attached; skip is how much of
// it the client reads before (the SecurityResult).
type tlsLeg struct {
	fd   int // the proxy's socket, to attach
	t    *TLSClient
	host *tls.Conn
}

func newTLSLeg(tb testing.TB, hostFirst []byte, skip int) tlsLeg {
	tb.Helper()
	ca := pki.NewCA(tb, "compute CA")
	leaf := ca.Issue(tb, "compute-1", x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	nc, raw := testutil.TCPPair(tb)
	host := tls.Server(raw, &tls.Config{Certificates: []tls.Certificate{leaf.TLS}})
	tb.Cleanup(func() { host.Close() })
	hostDone := make(chan error, 1)
	go func() {
		err := host.Handshake()
		if err == nil && len(hostFirst) > 0 {
			_, err = host.Write(hostFirst)
		}
		hostDone <- err
	}()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	t := NewTLSClient(nc, &tls.Config{RootCAs: ca.Pool, ServerName: "127.0.0.1"})
	if err := t.Conn().Handshake(); err != nil {
		tb.Fatal(err)
	}
	if err := <-hostDone; err != nil {
		tb.Fatal(err)
	}
	if skip > 0 {
		if _, err := io.ReadFull(t.Conn(), make([]byte, skip)); err != nil {
			tb.Fatal(err)
		}
	}
	_ = nc.SetDeadline(time.Time{})
	fd, err := Detach(nc.(*net.TCPConn))
	if err != nil {
		tb.Fatal(err)
	}
	return tlsLeg{fd: fd, t: t, host: host}
}

// Bytes crypto/tls read during the handshake (the host's ServerInit behind
// its SecurityResult, in one record) reach the sink once started, though
// the socket has nothing more to say; then data flows both ways intact,
// and the host's close_notify is an orderly close.
func TestTLSLegBothWays(t *testing.T) {
	r := newRelay(t, Config{Pollers: 1})
	leg := newTLSLeg(t, []byte("\x00\x00\x00\x00ServerInit"), 4)
	s := newTestSink(true)
	s.conn = r.AttachTLS(leg.fd, leg.t, s, -1)
	s.conn.Start()
	testutil.WaitFor(t, "the bytes read ahead", func() bool { return bytes.Equal(s.received(), []byte("ServerInit")) })

	up := pattern(3 << 20)
	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, len(up))
		_ = leg.host.SetReadDeadline(time.Now().Add(20 * time.Second))
		n, _ := io.ReadFull(leg.host, b)
		got <- b[:n]
	}()
	for off := 0; off < len(up); off += 48 << 10 {
		chunk := up[off:min(off+48<<10, len(up))]
		half := len(chunk) / 3
		if _, err := s.conn.Write([][]byte{chunk[:half], chunk[half:]}); err != nil {
			t.Fatal(err)
		}
	}
	if b := <-got; !bytes.Equal(b, up) {
		t.Fatalf("host received %d bytes, want %d identical", len(b), len(up))
	}

	down := pattern(5 << 20)
	if _, err := leg.host.Write(down); err != nil {
		t.Fatal(err)
	}
	if err := leg.host.Close(); err != nil { // close_notify, then FIN
		t.Fatal(err)
	}
	select {
	case err := <-s.closed:
		if err != nil {
			t.Fatalf("HostClosed(%v), want an orderly close", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no HostClosed")
	}
	if b := s.received(); !bytes.Equal(b[len("ServerInit"):], down) {
		t.Fatalf("sink received %d bytes after ServerInit, want %d identical", len(b)-len("ServerInit"), len(down))
	}
}

// A client that takes nothing stops the poller reading the host past
// HighWater plus one read, TLS or not: the records crypto/tls already
// holds wait too. Once the client reads, everything arrives in order,
// including what crypto/tls held when reading paused (no epoll event
// announces it).
func TestTLSLegBackpressure(t *testing.T) {
	cfg := Config{Pollers: 1, HighWater: 64 << 10, ReadSize: 16 << 10}
	r := newRelay(t, cfg)
	leg := newTLSLeg(t, nil, 0)
	s := newTestSink(false)
	s.conn = r.AttachTLS(leg.fd, leg.t, s, -1)
	s.conn.Start()
	want := pattern(8 << 20)
	wrote := make(chan error, 1)
	go func() {
		_, err := leg.host.Write(want)
		if err == nil {
			err = leg.host.Close()
		}
		wrote <- err
	}()
	testutil.WaitFor(t, "pause", s.conn.Paused)
	if got := s.conn.Buffered(); got > cfg.HighWater+int64(cfg.ReadSize) {
		t.Fatalf("buffered %d bytes, bound %d", got, cfg.HighWater+int64(cfg.ReadSize))
	}
	// Paused: the poller does not touch crypto/tls's reads (Paused is
	// stored after the last of them), so its buffer can be looked at.
	if held := tlsrec.Buffered(leg.t.tc); held < 0 || held > MaxTLSReadAhead {
		t.Fatalf("crypto/tls holds %d bytes read ahead, bound %d", held, MaxTLSReadAhead)
	} else {
		t.Logf("paused with %d plaintext bytes in flight and %d read ahead in crypto/tls", s.conn.Buffered(), held)
	}
	select {
	case err := <-wrote:
		t.Fatalf("host wrote all while the client read nothing (%v)", err)
	default:
	}
	s.release()
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if err := <-s.closed; err != nil {
		t.Fatalf("HostClosed(%v)", err)
	}
	if got := s.received(); !bytes.Equal(got, want) {
		t.Fatalf("received %d bytes, want %d identical", len(got), len(want))
	}
}

// Records the host does not take are held back (Pending counts them, so
// the client side pauses as for a plain host) and flushed once it reads;
// HostWritable follows. CloseWrite then delivers a close_notify after
// them: the host reads io.EOF, not a truncation.
func TestTLSLegHeldBackAndCloseNotify(t *testing.T) {
	r := newRelay(t, Config{Pollers: 1})
	leg := newTLSLeg(t, nil, 0)
	s := newTestSink(true)
	s.conn = r.AttachTLS(leg.fd, leg.t, s, -1)
	s.conn.Start()
	want := pattern(8 << 20)
	pending, err := s.conn.Write([][]byte{want})
	if err != nil {
		t.Fatal(err)
	}
	if pending == 0 {
		t.Fatal("8 MiB of records into a socket nobody reads cannot all be written")
	}
	if p := s.conn.Pending(); p < pending {
		t.Fatalf("Pending %d after Write said %d", p, pending)
	}
	expectFlushed(t, leg.host, s, want)
	if _, err := s.conn.Write([][]byte{[]byte("last")}); err != nil {
		t.Fatal(err)
	}
	s.conn.CloseWrite()
	rest, err := io.ReadAll(leg.host)
	if err != nil || string(rest) != "last" {
		t.Fatalf("host read %q, %v after CloseWrite; want \"last\" and a close_notify", rest, err)
	}
}

// Close sends a close_notify too (best effort) and closes the socket.
func TestTLSLegClose(t *testing.T) {
	r := newRelay(t, Config{Pollers: 1})
	before := testutil.CountFDs(t)
	leg := newTLSLeg(t, nil, 0)
	s := newTestSink(true)
	s.conn = r.AttachTLS(leg.fd, leg.t, s, -1)
	s.conn.Start()
	s.conn.Close()
	_ = leg.host.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := leg.host.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("host read %d, %v; want io.EOF (close_notify)", n, err)
	}
	leg.host.Close()
	if _, err := s.conn.Write([][]byte{[]byte("x")}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	testutil.WaitFor(t, "descriptors released", func() bool { return testutil.CountFDs(t) <= before })
}

// --write-timeout holds for the TLS leg: a host that takes no record for
// the timeout while records are held for it is closed with ErrWriteTimeout,
// or by the kernel's TCP_USER_TIMEOUT (the same duration) if that fires
// first: the socket's zero-window probes go unanswered as long.
func TestTLSLegWriteTimeout(t *testing.T) {
	r := newRelay(t, Config{Pollers: 1, WriteTimeout: 300 * time.Millisecond})
	leg := newTLSLeg(t, nil, 0)
	s := newTestSink(true)
	s.conn = r.AttachTLS(leg.fd, leg.t, s, -1)
	s.conn.Start()
	if pending, err := s.conn.Write([][]byte{pattern(8 << 20)}); err != nil || pending == 0 {
		t.Fatalf("Write: %d pending, %v", pending, err)
	}
	select {
	case err := <-s.closed:
		if !errors.Is(err, ErrWriteTimeout) && !errors.Is(err, unix.ETIMEDOUT) {
			t.Fatalf("HostClosed(%v), want ErrWriteTimeout or ETIMEDOUT", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a host that reads nothing was not closed")
	}
}

// A host's bad record ends the leg with an error, not an orderly close.
func TestTLSLegBadRecord(t *testing.T) {
	r := newRelay(t, Config{Pollers: 1})
	leg := newTLSLeg(t, nil, 0)
	s := newTestSink(true)
	s.conn = r.AttachTLS(leg.fd, leg.t, s, -1)
	s.conn.Start()
	raw := leg.host.NetConn()
	if _, err := raw.Write([]byte{23, 3, 3, 0, 20, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.closed:
		if err == nil {
			t.Fatal("a record that does not decrypt ended the leg as an orderly close")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no HostClosed")
	}
}

// allocSink takes host data as a session does, without allocating.
type allocSink struct {
	conn *Conn
	got  int
}

func (s *allocSink) HostData(b *bytebufferpool.ByteBuffer, n int) {
	s.got += n
	PutBuffer(b)
	s.conn.Ack(n, 0)
}
func (s *allocSink) HostWritable()    {}
func (s *allocSink) HostClosed(error) {}
func (s *allocSink) Resample()        {}

// tlsReadAllocs is what crypto/tls itself allocates per readTLS of one
// record: a 16-byte atLeastReader for each socket read it makes (the one
// that takes the record, the one that finds the socket empty). It escapes
// inside crypto/tls, whatever the transport; the loop's wss:// reads pay
// the same.
const tlsReadAllocs = 2

// The record path allocates nothing of its own once warm: sealing a batch
// of client bytes and writing it (Conn.Write), and reading and decrypting a
// host record into a pooled read buffer (readTLS) beyond tlsReadAllocs. The
// poller is not running: the test drives its read itself.
func TestTLSLegNoAllocations(t *testing.T) {
	if testutil.Race {
		t.Skip("allocation counts are not meaningful under -race")
	}
	leg := newTLSLeg(t, nil, 0)
	p := &Poller{cfg: Config{Pollers: 1}.withDefaults(), trims: map[*Conn]struct{}{}}
	s := &allocSink{}
	leg.t.w.hs, leg.t.w.fd = nil, leg.fd
	c := &Conn{fd: leg.fd, p: p, sink: s, tls: leg.t}
	s.conn = c
	p.conns.set(c.fd, c)
	t.Cleanup(c.closeFD)
	const runs = 100
	frame := pattern(256) // runs records of it fit the host's socket buffer: nothing is held back
	iov := [][]byte{frame[:6], frame[6:]}
	write := func() {
		if pending, err := c.Write(iov); err != nil || pending != 0 {
			t.Fatalf("Write: %d pending, %v", pending, err)
		}
	}
	read := func() {
		if _, err := leg.host.Write(frame); err != nil {
			t.Fatal(err)
		}
		before := s.got
		for s.got == before {
			p.readTLS(c)
		}
	}
	write()
	read()
	if n := testing.AllocsPerRun(runs, write); n != 0 {
		t.Errorf("Conn.Write on a TLS leg: %v allocations per write", n)
	}
	got := make([]byte, (runs+2)*len(frame))
	_ = leg.host.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(leg.host, got); err != nil {
		t.Fatalf("host: %v", err)
	}
	n := testing.AllocsPerRun(runs, read)
	if n > tlsReadAllocs {
		t.Errorf("readTLS: %v allocations per record, crypto/tls's own are %d", n, tlsReadAllocs)
	}
	t.Logf("readTLS: %v allocations per record (crypto/tls's atLeastReader)", n)
}
