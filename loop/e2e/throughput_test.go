//go:build linux

package e2e

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/relay"
	"github.com/consoleproxy/consoleproxy/wsframe"
)

const benchStream = 256 << 20

// BenchmarkHostToClient measures one session's host→client throughput
// through the real binary, beside the same transfer read straight from the
// backend over loopback TCP (the physical reference in the same run).
// Compare the two MB/s figures as a ratio: absolute numbers vary with the
// machine's load.
func BenchmarkHostToClient(b *testing.B) {
	back := startBackend(b, firehose(benchStream))
	b.Run("direct-tcp", func(b *testing.B) {
		b.SetBytes(benchStream)
		for i := 0; i < b.N; i++ {
			c, err := net.Dial("tcp", back.ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, struct{ io.Reader }{c})
			c.Close()
			if n != benchStream {
				b.Fatalf("read %d", n)
			}
		}
	})
	toks, lines := benchTokens("bench-", back.port())
	p := startBinary(b, lines, "--ping-interval", "0")
	b.Run("consoleproxy", func(b *testing.B) {
		b.SetBytes(benchStream)
		defer reportCPU(b, p)()
		for i := 0; i < b.N; i++ {
			c := open(b, p.addr, req{token: toks[i%len(toks)], protocol: "binary"})
			if n := drainFrames(b, c); n != benchStream {
				b.Fatalf("read %d", n)
			}
		}
	})
	k := newPKI(b)
	pt := startBinary(b, lines, "--ping-interval", "0", "--cert", k.certFile, "--key", k.keyFile)
	b.Run("consoleproxy-tls", func(b *testing.B) {
		b.SetBytes(benchStream)
		defer reportCPU(b, pt)()
		for i := 0; i < b.N; i++ {
			c, err := dialTLS(b, pt.addr, &tls.Config{RootCAs: k.pool}, req{token: toks[i%len(toks)], protocol: "binary"})
			if err != nil {
				b.Fatal(err)
			}
			if n := drainFrames(b, c); n != benchStream {
				b.Fatalf("read %d", n)
			}
		}
	})
}

// drainFrames counts payload bytes until the close frame, without copying.
func drainFrames(b *testing.B, c *wsClient) int {
	buf := make([]byte, 256<<10)
	total := 0
	pending := c.buf // bytes already read with the handshake
	for {
		for len(pending) > 0 {
			ev, n, err := c.parser.Next(pending)
			pending = pending[n:]
			if err != nil {
				b.Fatal(err)
			}
			if ev.Kind == wsframe.Data {
				total += len(ev.Payload)
			} else if ev.Kind == wsframe.Control && ev.OpCode == ws.OpClose {
				return total
			}
		}
		n, err := c.br.Read(buf)
		if err != nil {
			return total
		}
		pending = buf[:n]
	}
}

// BenchmarkClientToHost measures one session's client→host throughput
// (masked 32 KiB binary frames, unmasked in place by the proxy), beside the
// same bytes written straight to the backend.
func BenchmarkClientToHost(b *testing.B) {
	got := make(chan int64, 1)
	sink := func(_ *backend, c net.Conn) {
		n, _ := io.Copy(io.Discard, struct{ io.Reader }{c})
		got <- n
		c.Close()
	}
	back := startBackend(b, sink)
	chunk := make([]byte, 32<<10)
	b.Run("direct-tcp", func(b *testing.B) {
		b.SetBytes(benchStream)
		for i := 0; i < b.N; i++ {
			c, err := net.Dial("tcp", back.ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			for sent := 0; sent < benchStream; sent += len(chunk) {
				_, _ = c.Write(chunk)
			}
			c.Close()
			if n := <-got; n != benchStream {
				b.Fatalf("host got %d", n)
			}
		}
	})
	toks, lines := benchTokens("up-", back.port())
	// gnet cannot stop reading a client socket, so a client uploading flat
	// out over loopback faster than the host drains is cut at
	// --max-client-backlog (DECISIONS.md); raise it here to measure the path.
	p := startBinary(b, lines, "--ping-interval", "0", "--max-client-backlog", strconv.Itoa(64<<20))
	frame := maskedFrame(true, ws.OpBinary, chunk)
	b.Run("consoleproxy", func(b *testing.B) {
		b.SetBytes(benchStream)
		defer reportCPU(b, p)()
		for i := 0; i < b.N; i++ {
			c := open(b, p.addr, req{token: toks[i%len(toks)], protocol: "binary"})
			_ = c.conn.SetDeadline(time.Now().Add(time.Minute))
			for sent := 0; sent < benchStream; sent += len(chunk) {
				if _, err := c.conn.Write(frame); err != nil {
					// The proxy's reason is in the session's end record: wait
					// (bounded) for one more in its stderr.
					ends := strings.Count(p.stderr.String(), `"result":`)
					testutil.Eventually(time.Second, func() bool { return strings.Count(p.stderr.String(), `"result":`) > ends })
					b.Fatalf("%v\n%s", err, p.stderr)
				}
			}
			c.conn.Close()
			if n := <-got; n != benchStream {
				b.Fatalf("host got %d", n)
			}
		}
	})
	k := newPKI(b)
	pt := startBinary(b, lines, "--ping-interval", "0", "--cert", k.certFile, "--key", k.keyFile)
	b.Run("consoleproxy-tls", func(b *testing.B) {
		b.SetBytes(benchStream)
		defer reportCPU(b, pt)()
		for i := 0; i < b.N; i++ {
			c, err := dialTLS(b, pt.addr, &tls.Config{RootCAs: k.pool}, req{token: toks[i%len(toks)], protocol: "binary"})
			if err != nil || c.resp.StatusCode != 101 {
				b.Fatalf("wss: %v", err)
			}
			_ = c.conn.SetDeadline(time.Now().Add(time.Minute))
			for sent := 0; sent < benchStream; sent += len(chunk) {
				if _, err := c.conn.Write(frame); err != nil {
					b.Fatalf("%v\n%s", err, pt.stderr)
				}
			}
			c.conn.Close()
			if n := <-got; n != benchStream {
				b.Fatalf("host got %d", n)
			}
		}
	})
}

// BenchmarkRelayAllocs reports heap allocations per relayed 32 KiB frame
// each way, with the proxy in process (the test's own client and backend
// allocate nothing per frame on these paths).
func BenchmarkRelayAllocs(b *testing.B) {
	const total = 64 << 20
	down := startBackend(b, firehose(total))
	got := make(chan int64, 1)
	up := startBackend(b, func(_ *backend, c net.Conn) {
		n, _ := io.Copy(io.Discard, struct{ io.Reader }{c})
		got <- n
		c.Close()
	})
	p := startProxy(b, nil)
	frames := float64(total / relay.DefaultReadSize)
	b.Run("host-to-client", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			c := open(b, p.addr, req{token: p.mint(down.port(), nil)})
			before := mallocs()
			if n := drainFrames(b, c); n != total {
				b.Fatalf("read %d", n)
			}
			b.ReportMetric(float64(mallocs()-before)/frames, "allocs/frame")
		}
	})
	chunk := make([]byte, relay.DefaultReadSize)
	frame := maskedFrame(true, ws.OpBinary, chunk)
	b.Run("client-to-host", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			c := open(b, p.addr, req{token: p.mint(up.port(), nil)})
			before := mallocs()
			for sent := 0; sent < total; sent += len(chunk) {
				if _, err := c.conn.Write(frame); err != nil {
					b.Fatal(err)
				}
			}
			c.conn.Close()
			if n := <-got; n != total {
				b.Fatalf("host got %d", n)
			}
			b.ReportMetric(float64(mallocs()-before)/frames, "allocs/frame")
		}
	})
}

func mallocs() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.Mallocs
}

// benchTokens makes 64 tokens for port and their token-file lines.
func benchTokens(prefix string, port int) (toks, lines []string) {
	for i := 0; i < 64; i++ {
		toks = append(toks, prefix+strconv.Itoa(i))
		lines = append(lines, tokenLine(toks[i], port))
	}
	return toks, lines
}

// reportCPU measures the proxy process's CPU time (user and system) from
// now until the returned function runs, and reports it per GB moved: unlike
// MB/s it hardly depends on what else the machine runs.
func reportCPU(b *testing.B, p *proc) func() {
	start := procCPU(b, p.cmd.Process.Pid)
	return func() {
		if gb := float64(b.N) * benchStream / 1e9; gb > 0 {
			b.ReportMetric((procCPU(b, p.cmd.Process.Pid)-start)/gb, "proxy-cpu-s/GB")
		}
	}
}

// procCPU is a process's user plus system CPU seconds (/proc/PID/stat).
func procCPU(t testing.TB, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command's closing parenthesis: state is the 3rd
	// field of the line, utime and stime the 14th and 15th.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clockTicks
}

// clockTicks is USER_HZ, the unit of /proc's CPU times (100 on Linux).
const clockTicks = 100
