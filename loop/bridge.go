//go:build linux

package loop

import (
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The goroutine bridge between a crypto/tls connection and a socket pair,
// for the VeNCrypt leg toward compute hosts (security.go): the relay
// pollers relay the pair's other end as if it were the host's socket.
// wss:// clients no longer use it: their records run on the event loop
// (tls.go).

// Copy buffers of a bridge: an idle direction holds only the small
// one; a busy one borrows a large pooled buffer while reads fill it.
const (
	bridgeSmall  = 1 << 10
	bridgeBuffer = 32 << 10
)

var bridgePool = sync.Pool{New: func() any { b := make([]byte, bridgeBuffer); return &b }}

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
