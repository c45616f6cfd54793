//go:build linux

package e2e

import (
	"encoding/binary"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// backend is a compute-host stand-in on loopback: one goroutine per
// connection is fine in a test backend.
type backend struct {
	ln      net.Listener
	accepts atomic.Int64
	written atomic.Int64
	mu      sync.Mutex
	conns   []net.Conn
}

func startBackend(t testing.TB, serve func(*backend, net.Conn)) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{ln: ln}
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		for _, c := range b.conns {
			c.Close()
		}
		b.mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.accepts.Add(1)
			b.mu.Lock()
			b.conns = append(b.conns, c)
			b.mu.Unlock()
			go serve(b, c)
		}
	}()
	return b
}

func (b *backend) port() int { return b.ln.Addr().(*net.TCPAddr).Port }

// echo sends back everything.
func echo(_ *backend, c net.Conn) {
	defer c.Close()
	copyPlain(c, c)
}

// copyPlain copies without splice(2), whose pipe pair would cost two more
// descriptors per session in a scale test.
func copyPlain(dst io.Writer, src io.Reader) {
	_, _ = io.Copy(struct{ io.Writer }{dst}, struct{ io.Reader }{src})
}

// firehose writes total bytes of a counting pattern as fast as the socket
// takes them, then closes.
// conn is the backend's first accepted connection (nil before one).
func (b *backend) conn() net.Conn {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.conns) == 0 {
		return nil
	}
	return b.conns[0]
}

func firehose(total int) func(*backend, net.Conn) {
	return func(b *backend, c net.Conn) {
		defer c.Close()
		buf := make([]byte, 32<<10)
		for off := 0; off < total; {
			n := min(len(buf), total-off)
			fillPattern(buf[:n], off)
			m, err := c.Write(buf[:n])
			b.written.Add(int64(m))
			if err != nil {
				return
			}
			off += m
		}
	}
}

// fillPattern fills p with the pattern at stream offset off: each 4-byte
// word is its own offset, so a lost, repeated or reordered byte shows.
func fillPattern(p []byte, off int) {
	var w [4]byte
	for i := range p {
		pos := off + i
		binary.BigEndian.PutUint32(w[:], uint32(pos/4))
		p[i] = w[pos%4]
	}
}

// resetter aborts the connection with a TCP RST once a byte arrives.
func resetter(_ *backend, c net.Conn) {
	_, _ = c.Read(make([]byte, 1))
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}
