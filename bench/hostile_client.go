package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/consoleproxy/consoleproxy/wsframe"
	"golang.org/x/sys/unix"
)

// The hostile scenarios' clients are a goroutine per connection, not the
// epoll loops of client*.go: they measure what an attack leaves in the
// proxy, not how fast it relays, their counts are small (tens to hundreds),
// and each connection's misbehaviour (stall here, reset there) reads best as
// straight-line code.

// hostileDialer opens connections to a started target.
type hostileDialer struct {
	ep   Endpoint
	srcs int           // spread over 127.0.0.2 … 127.0.0.(1+srcs)
	next atomic.Uint64 // round-robin source
}

// dialTimeout bounds one TCP connect of a hostile client.
const dialTimeout = 10 * time.Second

// upgradeTimeout bounds a hostile client's wait for the 101.
const upgradeTimeout = 10 * time.Second

// sockOpts are socket buffer sizes set before connect (0: the kernel's).
type sockOpts struct{ rcvbuf, sndbuf int }

// dial connects to addr from the next source address.
func (d *hostileDialer) dial(ctx context.Context, addr *net.TCPAddr, o sockOpts) (*net.TCPConn, error) {
	if addr == nil {
		return nil, errors.New("the target has no listener for this console")
	}
	src := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+d.next.Add(1)%uint64(max(d.srcs, 1))))}
	dl := net.Dialer{Timeout: dialTimeout, LocalAddr: src, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			if o.rcvbuf > 0 {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, o.rcvbuf)
			}
			if serr == nil && o.sndbuf > 0 {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, o.sndbuf)
			}
		})
		return errors.Join(err, serr)
	}}
	c, err := dl.DialContext(ctx, "tcp4", addr.String())
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// open connects a session of mode m with token and, on a WebSocket target,
// completes the upgrade.
func (d *hostileDialer) open(ctx context.Context, m Mode, token int, o sockOpts) (*net.TCPConn, error) {
	c, err := d.dial(ctx, d.ep.Addrs[m], o)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if !d.ep.WebSocket {
		return c, nil
	}
	if err := d.upgrade(c, token); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// upgrade sends the upgrade request and reads the response head; anything
// but 101 is an error naming the status.
func (d *hostileDialer) upgrade(c *net.TCPConn, token int) error {
	if err := c.SetDeadline(time.Now().Add(upgradeTimeout)); err != nil {
		return err
	}
	if _, err := c.Write(upgradeRequest(d.ep.Host, d.ep.Path(token))); err != nil {
		return fmt.Errorf("upgrade write: %w", err)
	}
	var head []byte
	buf := make([]byte, 1024)
	for indexHeadEnd(head) < 0 {
		n, err := c.Read(buf)
		head = append(head, buf[:n]...)
		if err != nil {
			return fmt.Errorf("upgrade read: %w", err)
		}
		if len(head) > 8<<10 {
			return errors.New("upgrade response too large")
		}
	}
	// Bytes after the head are the console's first output (a firehose
	// starts at once); the hostile clients that read only look for a close
	// frame, which cannot come before the 101.
	if code := statusOf(head); code != 101 {
		if code == 0 {
			return fmt.Errorf("not an HTTP response: %q", head[:min(len(head), 24)])
		}
		return fmt.Errorf("http status %d", code)
	}
	return c.SetDeadline(time.Time{})
}

// halfUpgrade is the first part of an upgrade request: a slowloris client
// sends it and stalls.
func (d *hostileDialer) halfUpgrade(token int) []byte {
	full := string(upgradeRequest(d.ep.Host, d.ep.Path(token)))
	i := strings.Index(full, "Upgrade:")
	return []byte(full[:i])
}

// appendFrame appends a masked client frame (RFC 6455 §5.2) with opcode op
// and payload p to dst.
func appendFrame(dst []byte, op byte, p []byte) []byte {
	dst = append(dst, 0x80|op)
	switch n := len(p); {
	case n < 126:
		dst = append(dst, 0x80|byte(n))
	case n < 1<<16:
		dst = append(dst, 0x80|126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	dst = append(dst, maskKey[:]...)
	start := len(dst)
	dst = append(dst, p...)
	maskBytes(dst[start:], 0)
	return dst
}

// payloadIn is the data-frame payload bytes within the first n bytes of
// buf, a run of whole client frames (control frames' payloads excluded).
func payloadIn(buf []byte, n int) int64 {
	var sum int64
	for off := 0; off < n && off+2 <= len(buf); {
		h := wsframe.HeaderLen(buf[off+1])
		plen := frameLen(buf[off:])
		if buf[off]&0x0f < 8 {
			sum += min(plen, int64(max(n-off-h, 0)))
		}
		off += h + int(plen)
	}
	return sum
}

// frameWatch follows the server's frames on one connection for the one
// thing a hostile client cares about: did the proxy close the session.
type frameWatch struct {
	hdr     [14]byte
	hdrN    int
	payLeft int64
	op      byte
	code    []byte // close payload so far
}

// feed consumes server bytes; it returns the close code (0 if none given)
// and true once a close frame is complete.
func (w *frameWatch) feed(p []byte) (int, bool) {
	for len(p) > 0 {
		if w.payLeft > 0 {
			k := int(min(w.payLeft, int64(len(p))))
			if w.op == 8 && len(w.code) < 2 {
				w.code = append(w.code, p[:min(k, 2-len(w.code))]...)
			}
			w.payLeft -= int64(k)
			p = p[k:]
			if w.payLeft == 0 && w.op == 8 {
				return w.closeCode(), true
			}
			continue
		}
		for len(p) > 0 && (w.hdrN < 2 || w.hdrN < wsframe.HeaderLen(w.hdr[1])) {
			w.hdr[w.hdrN] = p[0]
			w.hdrN++
			p = p[1:]
		}
		if w.hdrN < 2 || w.hdrN < wsframe.HeaderLen(w.hdr[1]) {
			return 0, false
		}
		w.op, w.payLeft, w.hdrN, w.code = w.hdr[0]&0x0f, frameLen(w.hdr[:w.hdrN]), 0, w.code[:0]
		if w.op == 8 && w.payLeft == 0 {
			return 0, true
		}
	}
	return 0, false
}

func (w *frameWatch) closeCode() int {
	if len(w.code) < 2 {
		return 0
	}
	return int(binary.BigEndian.Uint16(w.code))
}

// watchCut reads c until it ends, and reports why when the proxy ended it
// (a close frame, EOF or a reset) rather than the harness: "" when the
// harness had set *closing first. Run on its own goroutine.
func watchCut(c *net.TCPConn, ws bool, closing *atomic.Bool) string {
	var w frameWatch
	buf := make([]byte, 4<<10)
	for {
		n, err := c.Read(buf)
		if ws && n > 0 {
			if code, done := w.feed(buf[:n]); done && !closing.Load() {
				return fmt.Sprintf("closed by proxy (%d)", code)
			}
		}
		if err != nil {
			if closing.Load() {
				return ""
			}
			return "ended by proxy: " + errKind(err)
		}
	}
}

// errKind names an error briefly: the errno when there is one.
func errKind(err error) string {
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno):
		return errno.Error()
	case errors.Is(err, net.ErrClosed):
		return "closed"
	case err.Error() == "EOF":
		return "EOF"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return err.Error()
}

// isTimeout reports a deadline that passed.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// resetClose closes c with SO_LINGER 0: the peer gets a RST, and whatever
// c had not sent is dropped.
func resetClose(c *net.TCPConn) {
	c.SetLinger(0)
	c.Close()
}

// goodbye ends a session politely: a close frame on WebSocket (best
// effort, within a short deadline), then close.
func goodbye(c *net.TCPConn, ws bool) {
	if ws {
		c.SetWriteDeadline(time.Now().Add(time.Second))
		c.Write(appendFrame(nil, 8, []byte{0x03, 0xe8}))
	}
	c.Close()
}

// probeTimeout bounds one probe session: open, one echo, close.
const probeTimeout = 10 * time.Second

// probe opens a normal session on an echo console (token), has 16 bytes
// echoed and closes it: nil when the proxy serves a well-behaved client.
func (d *hostileDialer) probe(ctx context.Context, token int) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	c, err := d.open(ctx, ModeEcho, token, sockOpts{})
	if err != nil {
		return err
	}
	defer goodbye(c, d.ep.WebSocket)
	deadline, _ := ctx.Deadline()
	if err := c.SetDeadline(deadline); err != nil {
		return err
	}
	msg := []byte("consolebench-prb")
	out := msg
	if d.ep.WebSocket {
		out = appendFrame(nil, 2, msg)
	}
	if _, err := c.Write(out); err != nil {
		return fmt.Errorf("probe write: %w", err)
	}
	got, err := readPayload(c, d.ep.WebSocket, len(msg))
	if err != nil {
		return fmt.Errorf("probe read: %w", err)
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("probe echo %q, sent %q", got, msg)
	}
	return c.SetDeadline(time.Time{})
}

// readPayload reads n payload bytes from c (server frames on WebSocket,
// skipping control frames; raw bytes otherwise).
func readPayload(c net.Conn, ws bool, n int) ([]byte, error) {
	var out, in []byte
	buf := make([]byte, 4<<10)
	for len(out) < n {
		k, err := c.Read(buf)
		in = append(in, buf[:k]...)
		if !ws {
			out, in = append(out, in...), in[:0]
		}
		for ws && len(in) >= 2 && len(in) >= wsframe.HeaderLen(in[1]) {
			h := wsframe.HeaderLen(in[1])
			plen := int(frameLen(in))
			if len(in) < h+plen {
				break
			}
			switch op := in[0] & 0x0f; {
			case op == 8:
				return nil, errors.New("closed by proxy")
			case op < 8:
				out = append(out, in[h:h+plen]...)
			}
			in = in[h+plen:]
		}
		if err != nil && len(out) < n {
			return out, err
		}
	}
	return out, nil
}

// tally counts a hostile run's outcomes; safe from any goroutine.
type tally struct {
	opened, openFailed, cut, endedByProxy, closed atomic.Int64
	sent                                          atomic.Int64 // payload bytes the clients wrote
	offered                                       atomic.Int64 // other bytes written (pings, stalls)
	mu                                            sync.Mutex
	errs                                          map[string]int
}

func (t *tally) err(kind string) {
	t.mu.Lock()
	if t.errs == nil {
		t.errs = map[string]int{}
	}
	t.errs[kind]++
	t.mu.Unlock()
}

func (t *tally) errors() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]int, len(t.errs))
	for k, v := range t.errs {
		out[k] = v
	}
	return out
}
