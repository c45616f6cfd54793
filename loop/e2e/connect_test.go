package e2e

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/consoleproxy/consoleproxy/loop"
)

// connectHost is a compute host behind an HTTP CONNECT endpoint: it reads the
// request head, records it, answers with answer and then echoes.
func connectHost(answer string, requests chan<- string) func(*backend, net.Conn) {
	return func(_ *backend, c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		var head strings.Builder
		for {
			line, err := br.ReadString('\n')
			head.WriteString(line)
			if err != nil || line == "\r\n" {
				break
			}
		}
		requests <- head.String()
		if answer == "" {
			_, _ = io.Copy(io.Discard, br) // silence
			return
		}
		_, _ = io.WriteString(c, answer)
		copyPlain(c, br)
	}
}

func TestConnectThroughProxy(t *testing.T) {
	p := startProxy(t, func(cfg *loop.Config) { cfg.Dial.Timeout = 500 * time.Millisecond })
	requests := make(chan string, 10)
	ok := startBackend(t, connectHost("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nRFB 003.008\n", requests))
	path := "/console?token=abc%20def"
	c := open(t, p.addr, req{token: p.mint(ok.port(), func(r *record) { r.InternalAccessPath = &path })})
	if got := <-requests; got != "CONNECT /console?token=abc%20def HTTP/1.1\r\nHost: 127.0.0.1:"+itoa(ok.port())+"\r\n\r\n" {
		t.Fatalf("request %q", got)
	}
	if got := string(c.readData(12)); got != "RFB 003.008\n" {
		t.Fatalf("first console bytes %q", got)
	}
	c.send(ws.OpBinary, []byte("key"))
	if got := string(c.readData(3)); got != "key" {
		t.Fatalf("echo after CONNECT %q", got)
	}

	for _, tc := range []struct {
		name, answer, result string
	}{
		{"non-2xx", "HTTP/1.1 403 Forbidden\r\n\r\n", "connect_refused"},
		{"200 in a reason phrase", "HTTP/1.1 404 200 OK\r\n\r\n", "connect_refused"},
		{"not HTTP", "SSH-2.0-x\r\n\r\n", "connect_failed"},
		{"silence", "", "connect_timeout"},
	} {
		b := startBackend(t, connectHost(tc.answer, requests))
		resp := dial(t, p.addr, req{token: p.mint(b.port(), func(r *record) { r.InternalAccessPath = &path })})
		<-requests
		if resp.resp.StatusCode != 502 {
			t.Errorf("%s: status %d, want 502", tc.name, resp.resp.StatusCode)
		}
		waitFor(t, tc.result, func() bool { return !strings.Contains(metricsText(p), `result="`+tc.result+`"} 0`) })
	}

	// A path that could inject anything is refused before any connection.
	b := startBackend(t, connectHost("HTTP/1.1 200 OK\r\n\r\n", requests))
	for _, bad := range []string{"/x HTTP/1.1\r\nHost: evil\r\n\r\nGET /", "/a b", "/é", "relative"} {
		bad := bad
		resp := dial(t, p.addr, req{token: p.mint(b.port(), func(r *record) { r.InternalAccessPath = &bad })})
		if resp.resp.StatusCode != 502 {
			t.Errorf("path %q: status %d", bad, resp.resp.StatusCode)
		}
	}
	if b.accepts.Load() != 0 {
		t.Fatal("an invalid internal_access_path reached the compute host")
	}
	if strings.Contains(p.logs.String(), "evil") || strings.Contains(p.logs.String(), "abc%20def") {
		t.Fatal("the log holds an access path")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// BenchmarkHandshake measures opening a session (upgrade, lookup, dial, 101)
// straight to the host and through an internal_access_path CONNECT, in the
// same run; compare ns/op as a ratio.
func BenchmarkHandshake(b *testing.B) {
	p := startProxy(b, nil)
	direct := startBackend(b, echo)
	requests := make(chan string, 1<<16)
	behind := startBackend(b, connectHost("HTTP/1.1 200 OK\r\n\r\n", requests))
	path := "/console"
	for _, tc := range []struct {
		name string
		port int
		path *string
	}{{"direct", direct.port(), nil}, {"connect", behind.port(), &path}} {
		b.Run(tc.name, func(b *testing.B) {
			toks := make([]string, b.N)
			for i := range toks {
				toks[i] = p.mint(tc.port, func(r *record) { r.InternalAccessPath = tc.path })
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c := open(b, p.addr, req{token: toks[i]})
				c.conn.Close()
			}
		})
	}
}
