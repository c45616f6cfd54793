package loop

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// TLS (wss://) runs beside the gnet path, not on it: gnet cannot carry TLS.
// A connection whose first byte is a TLS handshake record (0x16) is taken out
// of gnet (its fd duplicated), crypto/tls terminates it on a goroutine, and
// the plaintext is bridged through a Unix socket pair whose other end is
// enrolled on the same gnet loop, marked secure and with the client's
// address. Everything after that (upgrade, policy, relay, timers) is the
// plain session state machine. Plain sessions pay one byte comparison.
// DECISIONS.md has the reasoning and the cost.

// tlsRecordHandshake is the first byte of a TLS ClientHello record.
const tlsRecordHandshake = 0x16

// Copy buffers of a TLS bridge: an idle direction holds only the small
// one; a busy one borrows a large pooled buffer while reads fill it.
const (
	bridgeSmall  = 1 << 10
	bridgeBuffer = 32 << 10
)

var bridgePool = sync.Pool{New: func() any { b := make([]byte, bridgeBuffer); return &b }}

// TLSConfig is the wss:// side of a Server.
type TLSConfig struct {
	// Config is the server's TLS configuration (certificates through
	// GetCertificate so they can be swapped while sessions stay up).
	Config *tls.Config
	// Only refuses plain connections: HTTP 400 if the bytes look like HTTP,
	// else the connection is closed (--ssl-only).
	Only bool
}

// enrolled marks a gnet connection that is the plaintext end of a TLS
// bridge: the session is secure and its peer is the TLS client.
type enrolled struct {
	peer netip.Addr
	// slot is set by whichever side takes the connection's --max-pending
	// slot over from the TLS handshake: the session's OnOpen, or serveTLS
	// giving it back when no OnOpen ran.
	slot atomic.Bool
}

// takeSlot reports whether the caller now owns the hand-off's --max-pending
// slot (true for exactly one caller).
func (e *enrolled) takeSlot() bool { return e.slot.CompareAndSwap(false, true) }

// handoffTLS takes the connection out of gnet and terminates TLS on a
// goroutine. Runs on the loop; the gnet connection closes (the socket lives
// on in the duplicated descriptor).
func (ss *session) handoffTLS() gnet.Action {
	fd, err := ss.c.Dup()
	if err != nil {
		return ss.refuse(ResultBadRequest, "tls hand-off failed")
	}
	prefix, _ := ss.c.Peek(-1)
	prefix = append([]byte(nil), prefix...)
	_, _ = ss.c.Discard(len(prefix))
	ss.counted = true // counted by the TLS side
	// serveTLS holds the --max-pending slot now.
	ss.lim.pending = false
	s, el, peer := ss.srv, ss.c.EventLoop(), ss.peer
	s.tlsWG.Add(1)
	go func() {
		defer s.tlsWG.Done()
		s.serveTLS(fd, prefix, el, peer)
	}()
	return gnet.Close
}

// serveTLS does the TLS handshake within the handshake timeout, then bridges
// the plaintext to a socket pair enrolled on el. It holds the connection's
// --max-pending slot until the enrolled end's OnOpen takes it over; if none
// does, it gives the slot back before bridging.
func (s *Server) serveTLS(fd int, prefix []byte, el gnet.EventLoop, peer netip.Addr) {
	e := &enrolled{peer: peer}
	giveBack := func() {
		if e.takeSlot() {
			s.limits.leavePending()
		}
	}
	defer giveBack()
	nc, err := fileConn(fd, "tls-client")
	if err != nil {
		s.metrics.results[ResultTLSFailed].Inc()
		return
	}
	tc := tls.Server(&prefixConn{Conn: nc, prefix: prefix}, s.cfg.TLS.Config)
	_ = tc.SetDeadline(s.cfg.Now().Add(s.cfg.HandshakeTimeout))
	ctx, cancel := context.WithTimeout(s.tlsCtx, s.cfg.HandshakeTimeout)
	err = tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		s.metrics.results[ResultTLSFailed].Inc()
		s.cfg.Logger.Info("session refused", "peer", peer.String(), "result", string(ResultTLSFailed), "reason", "tls handshake failed")
		tc.Close()
		return
	}
	_ = tc.SetDeadline(time.Time{})
	inner, outer, err := socketPair()
	if err != nil {
		tc.Close()
		return
	}
	res, err := el.Enroll(gnet.NewContext(context.Background(), e), inner)
	if err == nil {
		r := <-res // OnOpen has run by now, if it ever runs
		err = r.Err
	}
	giveBack()
	if err != nil {
		s.metrics.results[ResultShuttingDown].Inc()
		tc.Close()
		outer.Close()
		return
	}
	bridge(tc, outer, s.cfg.WriteTimeout)
}

// bridge copies both ways between a TLS connection and the plaintext end
// of a socket pair until either side ends, then closes both. A write that
// takes no byte for writeTimeout (> 0) ends it: the peer has stopped
// reading.
func bridge(tc, outer net.Conn, writeTimeout time.Duration) {
	tc, outer = deadlined(tc, writeTimeout), deadlined(outer, writeTimeout)
	var once sync.Once
	closeBoth := func() { once.Do(func() { tc.Close(); outer.Close() }) }
	done := make(chan struct{})
	go func() {
		copyBuffered(outer, tc) // TLS peer → plaintext end
		if cw, ok := outer.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		close(done)
	}()
	copyBuffered(tc, outer) // plaintext end → TLS peer
	closeBoth()
	<-done
}

// writeDeadlineConn sets a fresh write deadline before each write, so a
// peer that takes nothing for the timeout fails the write.
type writeDeadlineConn struct {
	net.Conn
	timeout time.Duration
}

func (w writeDeadlineConn) Write(p []byte) (int, error) {
	if err := w.Conn.SetWriteDeadline(time.Now().Add(w.timeout)); err != nil {
		return 0, err
	}
	return w.Conn.Write(p)
}

// CloseWrite half-closes the underlying connection when it can.
func (w writeDeadlineConn) CloseWrite() error {
	if cw, ok := w.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func deadlined(c net.Conn, timeout time.Duration) net.Conn {
	if timeout <= 0 {
		return c
	}
	return writeDeadlineConn{Conn: c, timeout: timeout}
}

// copyBuffered copies until src ends or dst fails. Idle, it waits in a read
// into a 1 KiB buffer; a read that fills it switches to a pooled 32 KiB
// buffer until a read comes back short, so thousands of idle TLS sessions do
// not each hold 64 KiB of copy buffers.
func copyBuffered(dst io.Writer, src io.Reader) {
	small := make([]byte, bridgeSmall)
	for {
		n, err := src.Read(small)
		if n > 0 {
			if _, werr := dst.Write(small[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
		if n == len(small) && !copyBusy(dst, src) {
			return
		}
	}
}

// copyBusy copies with a pooled buffer while reads fill it; false means
// the stream ended.
func copyBusy(dst io.Writer, src io.Reader) bool {
	bp := bridgePool.Get().(*[]byte)
	defer bridgePool.Put(bp)
	buf := *bp
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return false
			}
		}
		if err != nil {
			return false
		}
		if n < len(buf)/2 {
			return true
		}
	}
}

// pairBuffer is the socket buffer of each end of a TLS bridge's socket pair:
// room for a burst without waking the relay's backpressure each time.
const pairBuffer = 1 << 20

// socketPair returns two connected Unix stream sockets as net.Conns.
func socketPair() (net.Conn, net.Conn, error) {
	fds, err := pairFDs(0)
	if err != nil {
		return nil, nil, err
	}
	a, err := fileConn(fds[0], "tls-inner")
	if err != nil {
		unix.Close(fds[1])
		return nil, nil, err
	}
	b, err := fileConn(fds[1], "tls-outer")
	if err != nil {
		a.Close()
		return nil, nil, err
	}
	return a, b, nil
}

// pairFDs is a connected pair of Unix stream sockets (close-on-exec, plus
// flags) with pairBuffer socket buffers.
func pairFDs(flags int) ([2]int, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|flags, 0)
	if err != nil {
		return fds, err
	}
	for _, fd := range fds {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, pairBuffer)
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, pairBuffer)
	}
	return fds, nil
}

// fileConn wraps fd (taking ownership) as a net.Conn.
func fileConn(fd int, name string) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// prefixConn replays bytes gnet had already read before the hand-off.
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

// CertHolder serves the current certificate and swaps it on Reload, so
// SIGHUP renews certificates without dropping sessions.
type CertHolder struct {
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]
}

// LoadCert reads a certificate and its key; errors say which and why.
func LoadCert(certFile, keyFile string) (*CertHolder, error) {
	h := &CertHolder{certFile: certFile, keyFile: keyFile}
	return h, h.Reload()
}

// Reload re-reads the files; on failure the previous certificate stays.
func (h *CertHolder) Reload() error {
	for _, f := range []string{h.certFile, h.keyFile} {
		if _, err := os.ReadFile(f); err != nil {
			return fmt.Errorf("tls: cannot read %s: %w", f, err)
		}
	}
	c, err := tls.LoadX509KeyPair(h.certFile, h.keyFile)
	if err != nil {
		return fmt.Errorf("tls: certificate %s and key %s: %w", h.certFile, h.keyFile, err)
	}
	h.cert.Store(&c)
	return nil
}

// GetCertificate is for tls.Config.
func (h *CertHolder) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return h.cert.Load(), nil
}
