//go:build linux

package e2e

import (
	"crypto/tls"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// One session's throughput with VeNCrypt toward the host beside a plain
// session in the same run (compare the ratio, and proxy-cpu-s/GB: absolute
// MB/s vary with the machine's load). The host is a Go TLS server in this
// process, so its encryption shares the cores with the proxy's.

// BenchmarkVeNCryptHostToClient: the host streams benchStream bytes.
func BenchmarkVeNCryptHostToClient(b *testing.B) {
	k := newPKI(b)
	plain := startBackend(b, firehose(benchStream))
	secured := startBackend(b, vencryptServe(b, k, 0, func(bk *backend, tc *tls.Conn) {
		firehose(benchStream)(bk, tc)
	}))
	each := func(b *testing.B, c *wsClient, _ *proc) {
		if n := drainFrames(b, c); n != benchStream {
			b.Fatalf("read %d", n)
		}
	}
	args := []string{"--ping-interval", "0"}
	benchSessions(b, "plain", plain, args, false, each)
	benchSessions(b, "vencrypt", secured, append(args, vencryptArgs(k)...), true, each)
}

// benchSessions runs sub-benchmark name: b.N binary sessions, benchStream
// bytes each, through a proxy binary started with args toward back, each
// answered the RFB handshake first when greet, then given to each.
func benchSessions(b *testing.B, name string, back *backend, args []string, greet bool, each func(*testing.B, *wsClient, *proc)) {
	toks, lines := benchTokens(name+"-", back.port())
	p := startBinary(b, lines, args...)
	b.Run(name, func(b *testing.B) {
		b.SetBytes(benchStream)
		defer reportCPU(b, p)()
		for i := 0; i < b.N; i++ {
			c := open(b, p.addr, req{token: toks[i%len(toks)], protocol: "binary"})
			if greet {
				rfbAnswer(b, c, "")
			}
			each(b, c, p)
		}
	})
}

// BenchmarkVeNCryptClientToHost: the client uploads benchStream bytes in
// masked 32 KiB frames.
func BenchmarkVeNCryptClientToHost(b *testing.B) {
	k := newPKI(b)
	got := make(chan int64, 1)
	count := func(_ *backend, c net.Conn) {
		n, _ := io.Copy(io.Discard, struct{ io.Reader }{c})
		got <- n
	}
	plain := startBackend(b, func(bk *backend, c net.Conn) { defer c.Close(); count(bk, c) })
	secured := startBackend(b, vencryptServe(b, k, 0, func(bk *backend, tc *tls.Conn) { count(bk, tc) }))
	chunk := make([]byte, 32<<10)
	frame := maskedFrame(true, ws.OpBinary, chunk)
	each := func(b *testing.B, c *wsClient, p *proc) {
		_ = c.conn.SetDeadline(time.Now().Add(time.Minute))
		for sent := 0; sent < benchStream; sent += len(chunk) {
			if _, err := c.conn.Write(frame); err != nil {
				b.Fatalf("%v\n%s", err, p.stderr)
			}
		}
		c.conn.Close()
		if n := <-got; n != benchStream {
			b.Fatalf("host got %d", n)
		}
	}
	args := []string{"--ping-interval", "0", "--max-client-backlog", strconv.Itoa(64 << 20)}
	benchSessions(b, "plain", plain, args, false, each)
	benchSessions(b, "vencrypt", secured, append(args, vencryptArgs(k)...), true, each)
}

// vencryptArgs are the flags for VeNCrypt toward hosts with k's certificates.
func vencryptArgs(k *serverPKI) []string {
	return []string{"--vnc-auth-schemes", "vencrypt", "--vencrypt-ca-certs", k.caFile,
		"--vencrypt-client-cert", k.clientFile, "--vencrypt-client-key", k.clientKeyFile}
}
