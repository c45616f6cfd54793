package rfb

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/consoleproxy/consoleproxy/relay"
)

// The host's side of the handshake for a session: Secure takes the socket a
// relay poller connected (and any CONNECT answered), runs Negotiate on it
// blocking, on one of at most Handshakers goroutines, and hands back the
// socket to attach to a poller: as it is with None, or with its VeNCrypt TLS
// client (relay.AttachTLS), whose records then run on the poller. No
// goroutine is left per session once the handshake ended.

const (
	// Handshakers is the most security handshakes run at once, each on a
	// goroutine that exists only while there are handshakes to run. A
	// handshake mostly waits for the host (three more round trips and a TLS
	// handshake: about 2.7 ms on loopback, BenchmarkSecurityProxyHandshake),
	// so this allows some 20,000 session starts a second. As on the wss://
	// side (loop.TLSHandshakers), no goroutine is spent before the peer has
	// spoken: the caller awaits the host's RFB version on a relay poller
	// first (HostGreetingLen, relay.Open's StepGreeting), so a host that accepts and never
	// speaks (a stopped QEMU) holds none; one that greets and then stalls
	// holds its goroutine until the session's connect deadline.
	Handshakers = 64
	// HandshakeQueue is the most handshakes waiting for a goroutine; past
	// it Secure fails at once with ErrBusy. A waiting handshake's deadline
	// runs meanwhile.
	HandshakeQueue = 1024
)

// More errors of Secure; like the others they carry no byte of the host's.
var (
	ErrBusy     = errors.New("too many compute host security handshakes waiting")
	ErrSocket   = errors.New("compute host socket")
	ErrRFBEarly = errors.New("compute host sent data before ClientInit")
)

// Secured is a compute host's socket after the security handshake.
type Secured struct {
	// Fd is the connected, non-blocking socket, the caller's to attach.
	Fd int
	// TLS is VeNCrypt's TLS client over Fd (attach with relay.AttachTLS);
	// nil with None (relay.Attach).
	TLS    *relay.TLSClient
	Scheme Scheme
}

// Secure runs the compute host's side of the security handshake (Negotiate)
// on fd, a connected non-blocking socket it takes over; first are bytes the
// host sent before it (with a CONNECT answer). It runs on one of the
// proxy's handshake goroutines, within deadline, and done is called there
// once: with the socket to attach, or with an error (the socket is closed).
// Secure does not block; done may run before it returns (ErrBusy). host is
// the compute host's name or address, for the certificate check.
func (p *Proxy) Secure(fd int, first []byte, host string, deadline time.Time, done func(Secured, error)) {
	if !p.shakers.submit(func() { done(p.secure(fd, first, host, deadline)) }) {
		_ = unix.Close(fd)
		done(Secured{Fd: -1}, ErrBusy)
	}
}

func (p *Proxy) secure(fd int, first []byte, host string, deadline time.Time) (Secured, error) {
	fail := Secured{Fd: -1}
	nc, err := fileConn(fd)
	if err != nil {
		return fail, err
	}
	var conn net.Conn = nc
	pc := &prefixConn{Conn: nc, prefix: first}
	if len(first) > 0 {
		conn = pc
	}
	_ = nc.SetDeadline(deadline)
	// A context that cannot be cancelled: no watcher goroutine.
	t, scheme, err := p.negotiateTLS(context.Background(), conn, host)
	if err == nil && len(pc.prefix) > 0 {
		err = ErrRFBEarly // the host spoke after its SecurityResult before ClientInit
	}
	if err != nil {
		nc.Close()
		return fail, err
	}
	_ = nc.SetDeadline(time.Time{})
	out, err := relay.Detach(nc)
	if err != nil {
		return fail, fmt.Errorf("%w: %w", ErrSocket, err)
	}
	return Secured{Fd: out, TLS: t, Scheme: scheme}, nil
}

// fileConn wraps fd (taking ownership: it is closed) as a blocking-style
// *net.TCPConn on Go's poller.
func fileConn(fd int) (*net.TCPConn, error) {
	f := os.NewFile(uintptr(fd), "compute-host")
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSocket, err)
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("%w: not TCP", ErrSocket)
	}
	return tc, nil
}

// prefixConn replays bytes read before the handshake (with a CONNECT
// answer) ahead of the socket's.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.prefix) > 0 {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// pool runs jobs on at most max goroutines, started on demand and gone
// when the queue is empty, so an idle proxy has none.
type pool struct {
	mu      sync.Mutex
	running int
	max     int
	queue   []func()
	qmax    int
}

func newPool(max, qmax int) *pool { return &pool{max: max, qmax: qmax} }

// submit runs job now or queues it; false means the queue is full.
func (p *pool) submit(job func()) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running < p.max {
		p.running++
		go p.run(job)
		return true
	}
	if len(p.queue) >= p.qmax {
		return false
	}
	p.queue = append(p.queue, job)
	return true
}

func (p *pool) run(job func()) {
	for job != nil {
		job()
		p.mu.Lock()
		job = nil
		if len(p.queue) > 0 {
			job = p.queue[0]
			n := copy(p.queue, p.queue[1:])
			p.queue[n] = nil
			p.queue = p.queue[:n]
		} else {
			p.running--
		}
		p.mu.Unlock()
	}
}

// Reason is a fixed phrase for the log naming what failed in a security
// handshake (Secure, Negotiate): never the peer's bytes, nor the
// certificate's details.
func Reason(err error) string {
	if errors.Is(err, ErrVeNCryptTLS) {
		return tlsReason(err)
	}
	for _, e := range phrased {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	var ne net.Error
	if (errors.As(err, &ne) && ne.Timeout()) || errors.Is(err, context.DeadlineExceeded) {
		return "RFB handshake with the compute host timed out"
	}
	return "RFB handshake with the compute host failed"
}

// phrased are the failures whose own text is the log's phrase.
var phrased = []error{ErrRFBVersion, ErrRFBRefused, ErrRFBNoScheme, ErrVeNCrypt, ErrRFBClosed,
	ErrRFBAuthFailed, ErrRFBEarly, ErrBusy, ErrSocket}

// tlsReason names what failed in TLS toward a compute host.
func tlsReason(err error) string {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &unknown):
		return "compute host certificate: unknown authority (not under --vencrypt-ca-certs)"
	case errors.As(err, &hostname):
		return "compute host certificate does not name the token's host"
	case errors.As(err, &invalid):
		return "compute host certificate invalid (expired, not yet valid or not for servers)"
	case IsTLSAlert(err):
		return "compute host refused the TLS handshake (client certificate?)"
	case errors.Is(err, ErrRFBClosed):
		return "compute host closed after TLS (client certificate refused?)"
	}
	return "TLS handshake with the compute host failed"
}
