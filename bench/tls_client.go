package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// gclient is the TLS scenarios' client: a goroutine per session (or per
// handshake worker) over net.Conn, TLS through crypto/tls or not, a
// WebSocket upgrade when the target is a WebSocket proxy. Counters are
// atomics; mu guards the rest.
type gclient struct {
	ep      Endpoint
	overTLS bool
	tlsCfg  *tls.Config
	wire    *wire
	srcs    int // loopback source addresses 127.0.0.2… to spread connections over

	recv, sent                  atomic.Int64 // payload bytes
	opened, closed, failed      atomic.Int64
	handshakes                  atomic.Int64 // handshake scenario: completed
	stopUp                      atomic.Bool  // stream-up writers stop at their next template boundary
	mu                          sync.Mutex
	conns                       []*gconn
	hists                       []*Histogram
	errs                        map[string]int
	st                          *tls.ConnectionState // the first TLS session's, for the report
	readers, writers, hsWorkers sync.WaitGroup
}

// gconn is one open session; wmu serialises its writers (stream-up and
// the reader's pongs).
type gconn struct {
	c   net.Conn
	r   *bufio.Reader
	wmu sync.Mutex
}

// newGClient prepares a client for ep. The client offers X25519 only: Go's
// default also offers X25519MLKEM768, which consoleproxy would pick and
// haproxy's OpenSSL 3.0 cannot, and the two would not be comparable.
// Certificates are verified against roots, as a browser would.
func newGClient(ep Endpoint, spec *tlsSpec, roots *x509.CertPool, srcs, frameSize int) *gclient {
	return &gclient{ep: ep, overTLS: spec.tls, wire: newWire(ep.WebSocket, 8, frameSize), srcs: max(srcs, 1),
		errs: map[string]int{},
		tlsCfg: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", CurvePreferences: []tls.CurveID{tls.X25519},
			MinVersion: tls.VersionTLS12}}
}

// certPool holds the PEM certificate in file.
func certPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("tls roots: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("tls roots: no certificate in %s", file)
	}
	return pool, nil
}

func (g *gclient) received() int64       { return g.recv.Load() }
func (g *gclient) sentBytes() int64      { return g.sent.Load() }
func (g *gclient) handshakesDone() int64 { return g.handshakes.Load() }

func (g *gclient) note(why string) {
	g.mu.Lock()
	g.errs[why]++
	g.mu.Unlock()
}

func (g *gclient) errors() map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]int, len(g.errs))
	for k, v := range g.errs {
		out[k] = v
	}
	return out
}

func (g *gclient) state() *tls.ConnectionState {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.st
}

// collect merges the handshake workers' histograms (call once they ended).
func (g *gclient) collect() *Histogram {
	h := NewHistogram()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, w := range g.hists {
		h.Merge(w)
	}
	return h
}

// dial opens session i: TCP from a spread loopback source, the TLS
// handshake when over TLS, the upgrade when the target speaks WebSocket.
func (g *gclient) dial(ctx context.Context, i int, m Mode, token int) (*gconn, error) {
	addr := g.ep.Addrs[m]
	if g.overTLS {
		addr = g.ep.TLSAddrs[m]
	}
	if addr == nil {
		return nil, fmt.Errorf("the target has no %s listener for %s", map[bool]string{true: "TLS", false: "plain"}[g.overTLS], m)
	}
	ctx, cancel := context.WithTimeout(ctx, tlsOpenTimeout)
	defer cancel()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%g.srcs))}}
	c, err := d.DialContext(ctx, "tcp4", addr.String())
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if g.overTLS {
		tc := tls.Client(c, g.tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, fmt.Errorf("tls handshake: %w", err)
		}
		g.keepState(tc)
		c = tc
	}
	gc := &gconn{c: c, r: bufio.NewReaderSize(c, 64<<10)}
	if g.ep.WebSocket {
		if dl, ok := ctx.Deadline(); ok {
			_ = c.SetDeadline(dl)
		}
		if err := upgrade(gc, g.ep.Host, g.ep.Path(token)); err != nil {
			c.Close()
			return nil, err
		}
		_ = c.SetDeadline(time.Time{})
	}
	return gc, nil
}

func (g *gclient) keepState(tc *tls.Conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.st == nil {
		st := tc.ConnectionState()
		g.st = &st
	}
}

// upgrade sends the WebSocket upgrade and reads the response head up to
// its blank line; anything but 101 is an error.
func upgrade(gc *gconn, host, path string) error {
	if _, err := gc.c.Write(upgradeRequest(host, path)); err != nil {
		return fmt.Errorf("upgrade: %w", err)
	}
	status := 0
	for {
		line, err := gc.r.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("upgrade response: %w", err)
		}
		if status == 0 {
			status = statusOf(line)
			if status != 101 {
				return fmt.Errorf("http status %d", status)
			}
		}
		if len(line) <= 2 { // the blank line
			return nil
		}
	}
}

// openAll opens n sessions to console m at once and starts their readers;
// an error when any could not open (the run would measure fewer).
func (g *gclient) openAll(ctx context.Context, n int, m Mode) error {
	var wg sync.WaitGroup
	conns := make([]*gconn, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conns[i], errs[i] = g.dial(ctx, i, m, i)
		}()
	}
	wg.Wait()
	for i, c := range conns {
		if c == nil {
			g.failed.Add(1)
			g.note(errs[i].Error())
			continue
		}
		g.opened.Add(1)
		g.mu.Lock()
		g.conns = append(g.conns, c)
		g.mu.Unlock()
		g.readers.Add(1)
		go g.read(c)
	}
	return errors.Join(errs...)
}

// read counts what arrives on c until it ends: raw bytes over the TCP
// relay, frame payload over WebSocket (pings answered, a close ends it).
func (g *gclient) read(c *gconn) {
	defer g.readers.Done()
	if !g.ep.WebSocket {
		_, _ = io.Copy(io.Discard, countingReader{c.r, &g.recv}) // it ends when the session does
		return
	}
	var ctl [125]byte
	for {
		op, n, err := readFrameHeader(c.r)
		if err != nil {
			return
		}
		if op < 8 {
			k, err := c.r.Discard(int(n))
			g.recv.Add(int64(k))
			if err != nil {
				return
			}
			continue
		}
		if _, err := io.ReadFull(c.r, ctl[:n]); err != nil || op == 8 {
			return
		}
		if op == 9 {
			c.wmu.Lock()
			_, err := c.c.Write(pongFrame(ctl[:n]))
			c.wmu.Unlock()
			if err != nil {
				return
			}
		}
	}
}

// countingReader adds what it reads to n.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n.Add(int64(k))
	return k, err
}

// readFrameHeader reads a server frame's header (RFC 6455 §5.2): opcode
// and payload length; a masked frame or an oversized control frame is an
// error.
func readFrameHeader(r *bufio.Reader) (op byte, n int64, err error) {
	var h [14]byte
	if _, err := io.ReadFull(r, h[:2]); err != nil {
		return 0, 0, err
	}
	if h[1]&0x80 != 0 {
		return 0, 0, errors.New("masked server frame")
	}
	ext := 0
	switch h[1] & 0x7f {
	case 126:
		ext = 2
	case 127:
		ext = 8
	}
	if _, err := io.ReadFull(r, h[2:2+ext]); err != nil {
		return 0, 0, err
	}
	op, n = h[0]&0x0f, frameLen(h[:2+ext])
	if op >= 8 && n > 125 {
		return 0, 0, errors.New("oversized control frame")
	}
	return op, n, nil
}

// pongFrame is a masked pong carrying p (≤ 125 bytes, not retained).
func pongFrame(p []byte) []byte {
	f, _ := frame(true, p)
	f[0] = 0x8a
	return f
}

// startUploads makes every open session write the stream template flat
// out, whole templates (whole frames) at a time, until stopUploads.
func (g *gclient) startUploads() {
	g.mu.Lock()
	defer g.mu.Unlock()
	payload := g.wire.streamPayload(int64(len(g.wire.stream)))
	for _, c := range g.conns {
		g.writers.Add(1)
		go func() {
			defer g.writers.Done()
			for !g.stopUp.Load() {
				c.wmu.Lock()
				_, err := c.c.Write(g.wire.stream)
				c.wmu.Unlock()
				if err != nil {
					g.note("write: " + err.Error())
					return
				}
				g.sent.Add(payload)
			}
		}()
	}
}

// stopUploads stops the writers at their next template boundary and waits.
func (g *gclient) stopUploads() {
	g.stopUp.Store(true)
	g.writers.Wait()
}

// closeAll ends every session (a close frame first over WebSocket; TLS
// sends its close_notify) and waits for the goroutines.
func (g *gclient) closeAll() {
	g.stopUploads()
	g.hsWorkers.Wait()
	g.mu.Lock()
	conns := g.conns
	g.conns = nil
	g.mu.Unlock()
	for _, c := range conns {
		if g.ep.WebSocket {
			c.wmu.Lock()
			_, _ = c.c.Write(g.wire.closeFr) // best effort: the session ends either way
			c.wmu.Unlock()
		}
		c.c.Close()
		g.closed.Add(1)
	}
	g.readers.Wait()
}

// startHandshakes starts workers that each, until count handshakes are
// done or d has passed, open a fresh connection with a full handshake (no
// session cache: never resumed), prove it works (the upgrade's 101, or a
// byte echoed through the TCP relay), and close it. The returned channel
// closes when every worker has stopped.
func (g *gclient) startHandshakes(ctx context.Context, workers, count int, d time.Duration) <-chan struct{} {
	deadline := time.Now().Add(d)
	var next atomic.Int64
	done := make(chan struct{})
	for w := range workers {
		h := NewHistogram()
		g.mu.Lock()
		g.hists = append(g.hists, h)
		g.mu.Unlock()
		g.hsWorkers.Add(1)
		go func() {
			defer g.hsWorkers.Done()
			for ctx.Err() == nil && time.Now().Before(deadline) {
				i := int(next.Add(1) - 1)
				if i >= count {
					return
				}
				t0 := time.Now()
				if err := g.oneHandshake(ctx, w+i, i); err != nil {
					g.failed.Add(1)
					g.note(err.Error())
					continue
				}
				h.Record(time.Since(t0))
			}
		}()
	}
	go func() { g.hsWorkers.Wait(); close(done) }()
	return done
}

// oneHandshake is one connection of the handshake scenario.
func (g *gclient) oneHandshake(ctx context.Context, src, token int) error {
	c, err := g.dial(ctx, src, ModeEcho, token)
	if err != nil {
		return err
	}
	g.opened.Add(1)
	defer func() { c.c.Close(); g.closed.Add(1) }()
	if !g.ep.WebSocket {
		_ = c.c.SetDeadline(time.Now().Add(tlsOpenTimeout))
		var b [1]byte
		if _, err := c.c.Write([]byte{'h'}); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		if _, err := io.ReadFull(c.r, b[:]); err != nil {
			return fmt.Errorf("echo: %w", err)
		}
	}
	g.handshakes.Add(1)
	return nil
}
