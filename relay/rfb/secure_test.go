package rfb

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/valyala/bytebufferpool"
	"golang.org/x/sys/unix"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/internal/testutil/pki"
	"github.com/consoleproxy/consoleproxy/relay"
)

// sink collects what a relay poller hands over.
type sink struct {
	mu     sync.Mutex
	conn   *relay.Conn
	data   []byte
	closed chan error
}

func newSink() *sink { return &sink{closed: make(chan error, 1)} }

func (s *sink) HostData(b *bytebufferpool.ByteBuffer, n int) {
	s.mu.Lock()
	s.data = append(s.data, b.B[relay.Headroom:relay.Headroom+n]...)
	s.mu.Unlock()
	relay.PutBuffer(b)
	s.conn.Ack(n, 0)
}
func (s *sink) HostWritable()        {}
func (s *sink) HostClosed(err error) { s.closed <- err }
func (s *sink) Resample()            {}

func (s *sink) received() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.data...)
}

// hostFD dials addr and hands back the socket as a poller would.
func hostFD(t *testing.T, addr string) int {
	t.Helper()
	c := dialRFB(t, addr)
	fd, err := relay.Detach(c.(*net.TCPConn))
	if err != nil {
		t.Fatal(err)
	}
	return fd
}

type secured struct {
	s   Secured
	err error
}

func secure(t *testing.T, p *Proxy, fd int, first []byte) secured {
	t.Helper()
	got := make(chan secured, 1)
	p.Secure(fd, first, "127.0.0.1", time.Now().Add(rfbHangGuard), func(s Secured, err error) { got <- secured{s, err} })
	select {
	case r := <-got:
		return r
	case <-time.After(2 * rfbHangGuard):
		t.Fatal("Secure never called done")
		return secured{}
	}
}

// Secure runs the whole host side on a handshake goroutine and hands back
// a socket and its TLS client; attached to a relay poller, the host's
// ServerInit (read ahead behind the SecurityResult) reaches the client
// side, the client's bytes reach the host, and Close ends TLS with a
// close_notify. No goroutine is left behind.
func TestSecureVeNCrypt(t *testing.T) {
	before := runtime.NumGoroutine()
	ca := pki.NewCA(t, "compute CA")
	server := ca.Issue(t, "compute-1", x509.ExtKeyUsageServerAuth, loopback)
	client := ca.Issue(t, "consoleproxy", x509.ExtKeyUsageClientAuth, nil)
	sp := newTestProxy(t, Config{Schemes: []Scheme{SchemeVeNCrypt}, CAFile: ca.File, CertFile: client.CertFile, KeyFile: client.KeyFile})
	h := vencryptHost(t, server.TLS, ca.Pool, make(chan string, 1), "\x00\x00\x00\x00")
	r := secure(t, sp, hostFD(t, h.addr), nil)
	if r.err != nil || r.s.TLS == nil || r.s.Fd < 0 || r.s.Scheme != SchemeVeNCrypt {
		t.Fatalf("Secure: %+v, %v", r.s, r.err)
	}
	rl, err := relay.New(relay.Config{Pollers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer rl.Close()
	s := newSink()
	s.conn = rl.AttachTLS(r.s.Fd, r.s.TLS, s, -1)
	s.conn.Start()
	testutil.WaitFor(t, "ServerInit", func() bool { return bytes.Equal(s.received(), []byte("ServerInit")) })
	if _, err := s.conn.Write([][]byte{[]byte("ClientInit")}); err != nil {
		t.Fatal(err)
	}
	s.conn.CloseWrite()
	if res := h.wait(t); res.err != nil {
		t.Fatalf("host: %v (want the proxy's close_notify)", res.err)
	}
	testutil.WaitFor(t, "no goroutine left", func() bool { return runtime.NumGoroutine() <= before+1 }) // +1: the relay's poller
}

// With None the socket comes back as it is; bytes the host sent after its
// SecurityResult, before the client's ClientInit, are refused.
func TestSecureNone(t *testing.T) {
	ca := pki.NewCA(t, "compute CA")
	sp := newTestProxy(t, Config{Schemes: []Scheme{SchemeVeNCrypt, SchemeNone}, CAFile: ca.File})
	v := rfbVersion
	h := startRFBHost(t, []step{send(v + "\x01\x01"), expect(v + "\x01"), send("\x00\x00\x00\x00")}, nil)
	r := secure(t, sp, hostFD(t, h.addr), nil)
	if r.err != nil || r.s.TLS != nil || r.s.Scheme != SchemeNone {
		t.Fatalf("Secure: %+v, %v", r.s, r.err)
	}
	unix.Close(r.s.Fd)
	h.wait(t)

	// The CONNECT answer brought the host's whole handshake and a byte more.
	h = startRFBHost(t, []step{expect(v + "\x01")}, nil)
	r = secure(t, sp, hostFD(t, h.addr), []byte(v+"\x01\x01\x00\x00\x00\x00X"))
	if !errors.Is(r.err, ErrRFBEarly) || r.s.Fd != -1 {
		t.Fatalf("Secure with a byte after the SecurityResult: %+v, %v; want ErrRFBEarly", r.s, r.err)
	}
	h.wait(t)
}

// The handshake goroutines are bounded: past Handshakers running and
// HandshakeQueue waiting, Secure fails at once with ErrBusy and closes
// the socket; queued jobs run in turn, and the goroutines end once idle.
func TestSecureBounded(t *testing.T) {
	before := runtime.NumGoroutine()
	p := newPool(2, 3)
	release := make(chan struct{})
	var ran sync.WaitGroup
	job := func() { <-release; ran.Done() }
	ran.Add(5)
	for i := 0; i < 5; i++ {
		if !p.submit(job) {
			t.Fatalf("job %d refused with %d running and %d queued", i, min(i, 2), max(i-2, 0))
		}
	}
	if p.submit(job) {
		t.Fatal("a sixth job was taken past 2 running and 3 queued")
	}
	if g := runtime.NumGoroutine(); g > before+2 {
		t.Fatalf("%d goroutines for 5 jobs on a pool of 2, from %d", g, before)
	}
	close(release)
	ran.Wait()
	testutil.WaitFor(t, "the pool's goroutines to end", func() bool { return runtime.NumGoroutine() <= before })

	ca := pki.NewCA(t, "compute CA")
	sp := newTestProxy(t, Config{Schemes: []Scheme{SchemeVeNCrypt}, CAFile: ca.File})
	sp.shakers = newPool(0, 0) // full
	h := startRFBHost(t, nil, nil)
	fd := hostFD(t, h.addr)
	r := secure(t, sp, fd, nil)
	if !errors.Is(r.err, ErrBusy) || r.s.Fd != -1 {
		t.Fatalf("Secure on a full pool: %+v, %v; want ErrBusy", r.s, r.err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); !errors.Is(err, unix.EBADF) {
		t.Fatalf("the socket of a refused handshake is still open (%v)", err)
	}
	if res := h.wait(t); len(res.extra) != 0 {
		t.Fatalf("the host got %q from a refused handshake", res.extra)
	}
}

// Reason never shows the host's bytes or the certificate's names, and says
// what failed.
func TestReason(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{ErrRFBNoScheme, ErrRFBNoScheme.Error()},
		{ErrBusy, ErrBusy.Error()},
		{errors.Join(ErrSocket, errors.New("fd 7")), ErrSocket.Error()},
		{&net.OpError{Op: "read", Err: timeoutErr{}}, "RFB handshake with the compute host timed out"},
		{errors.Join(ErrVeNCryptTLS, x509.HostnameError{Certificate: &x509.Certificate{}, Host: "secret.example"}), "compute host certificate does not name the token's host"},
		{errors.New("secret"), "RFB handshake with the compute host failed"},
	} {
		if got := Reason(tc.err); got != tc.want {
			t.Errorf("Reason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// Handshakes with one host share one TLS configuration (a tls.Conn keeps
// its own for life), each host's names it, and no more than MaxHostConfigs
// are kept.
func TestClientTLSPerHost(t *testing.T) {
	c := newClientTLS(&tls.Config{MinVersion: tls.VersionTLS12}, false)
	a, b := c.forHost("10.0.0.1"), c.forHost("10.0.0.2")
	if a.ServerName != "10.0.0.1" || b.ServerName != "10.0.0.2" {
		t.Fatalf("server names %q, %q", a.ServerName, b.ServerName)
	}
	if c.forHost("10.0.0.1") != a {
		t.Fatal("a second handshake with a host built another configuration")
	}
	for i := 0; i < MaxHostConfigs+10; i++ {
		c.forHost("host-" + strconv.Itoa(i))
	}
	if n := c.n.Load(); n != MaxHostConfigs {
		t.Fatalf("%d configurations kept, cap %d", n, MaxHostConfigs)
	}
	if cfg := c.forHost("one-more"); cfg.ServerName != "one-more" {
		t.Fatalf("past the cap: server name %q", cfg.ServerName)
	}
	skip := newClientTLS(&tls.Config{}, true)
	if s := skip.forHost("x"); s != skip.forHost("y") || s.ServerName != "" || !s.InsecureSkipVerify || s.VerifyConnection == nil {
		t.Fatal("SkipHostname: want one configuration checking the chain alone")
	}
}
