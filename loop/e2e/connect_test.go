//go:build linux

package e2e

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/loop"
)

// connectEndpoint is a compute host behind an HTTP CONNECT endpoint: it
// reads the request head, records it, then plays its part.
func connectEndpoint(requests chan<- string, play func(c net.Conn, br *bufio.Reader)) func(*backend, net.Conn) {
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
		play(c, br)
	}
}

// connectHost answers with answer and then echoes; an empty answer is
// silence.
func connectHost(answer string, requests chan<- string) func(*backend, net.Conn) {
	return connectEndpoint(requests, func(c net.Conn, br *bufio.Reader) {
		if answer == "" {
			_, _ = io.Copy(io.Discard, br)
			return
		}
		_, _ = io.WriteString(c, answer)
		copyPlain(c, br)
	})
}

// A session behind internal_access_path: the request is exactly the
// request line, Host and the blank line; the console bytes that came in the
// answer's own write reach the client first, then the host's next bytes, in
// order and intact, in binary and in base64 sessions.
func TestConnectAccessPath(t *testing.T) {
	p := startProxy(t, func(cfg *loop.Config) { cfg.Dial.Timeout = 2 * time.Second })
	requests := make(chan string, 10)
	stream := make([]byte, 256<<10)
	fillPattern(stream, 0)
	host := startBackend(t, connectEndpoint(requests, func(c net.Conn, br *bufio.Reader) {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nRFB 003.008\n")
		_, _ = c.Write(stream)
		copyPlain(c, br)
	}))
	path := "/console?token=abc%20def"
	for _, protocol := range []string{"", "base64"} {
		c := open(t, p.addr, req{protocol: protocol, token: p.mint(host.port(), func(r *record) { r.InternalAccessPath = &path })})
		if got := <-requests; got != "CONNECT /console?token=abc%20def HTTP/1.1\r\nHost: 127.0.0.1:"+strconv.Itoa(host.port())+"\r\n\r\n" {
			t.Fatalf("request %q", got)
		}
		got := c.readData(12 + len(stream))
		if string(got[:12]) != "RFB 003.008\n" {
			t.Fatalf("%q: first console bytes %q", protocol, got[:12])
		}
		if string(got[12:]) != string(stream) {
			t.Fatalf("%q: the host's bytes after the answer are lost, repeated or reordered", protocol)
		}
		if protocol == "base64" {
			c.send(ws.OpText, []byte(base64.StdEncoding.EncodeToString([]byte("key"))))
		} else {
			c.send(ws.OpBinary, []byte("key"))
		}
		if got := string(c.readData(3)); got != "key" {
			t.Fatalf("%q: echo after CONNECT %q", protocol, got)
		}
	}
	if strings.Contains(p.logs.String(), "abc%20def") {
		t.Fatal("the log holds the access path")
	}
}

// Each way a CONNECT answer can fail is a 502 with its own result; the log
// names the instance and a refusal's status code, never the answer's bytes
// or the path.
func TestConnectFailures(t *testing.T) {
	p := startProxy(t, func(cfg *loop.Config) { cfg.Dial.Timeout = 500 * time.Millisecond })
	requests := make(chan string, 10)
	say := func(s string) func(net.Conn, *bufio.Reader) {
		return func(c net.Conn, br *bufio.Reader) { _, _ = io.WriteString(c, s); _, _ = io.Copy(io.Discard, br) }
	}
	tests := []struct {
		name   string
		play   func(net.Conn, *bufio.Reader)
		result string
		logs   string
	}{
		{"non-2xx", say("HTTP/1.1 403 Forbidden\r\nContent-Length: 11\r\n\r\nsecret-body"), "connect_refused", "non-2xx status: 403"},
		{"200 in a non-2xx reason phrase", say("HTTP/1.1 404 200 OK\r\n\r\n"), "connect_refused", "non-2xx status: 404"},
		{"not HTTP", say("SSH-2.0-secret-banner\r\n"), "connect_malformed", "malformed CONNECT answer"},
		{"endless header lines", func(c net.Conn, _ *bufio.Reader) {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\n")
			for i := 0; i < 5000; i++ {
				if _, err := io.WriteString(c, "X-Secret-Pad: 0123456789\r\n"); err != nil {
					return
				}
			}
		}, "connect_too_large", "head too large"},
		{"close mid-answer", func(c net.Conn, _ *bufio.Reader) { _, _ = io.WriteString(c, "HTTP/1.1 200 Conn") }, "connect_closed", "closed during CONNECT"},
		{"silence", say(""), "connect_timeout", "timed out"},
	}
	counted := map[string]int{}
	for i, tc := range tests {
		b := startBackend(t, connectEndpoint(requests, tc.play))
		path := "/secret-path"
		uuid := fmt.Sprintf("6f1d7c2e-0000-4000-8000-%012d", i)
		r := dial(t, p.addr, req{token: p.mint(b.port(), func(r *record) { r.InternalAccessPath = &path; r.InstanceUUID = uuid })})
		<-requests
		if r.resp.StatusCode != 502 {
			t.Errorf("%s: status %d, want 502", tc.name, r.resp.StatusCode)
		}
		counted[tc.result]++
		if m := metricsText(p); !strings.Contains(m, fmt.Sprintf(`consoleproxy_sessions_total{result="%s"} %d`, tc.result, counted[tc.result])) {
			t.Errorf("%s: %s not counted", tc.name, tc.result)
		}
		// The line is logged just after the answer is written.
		testutil.WaitFor(t, tc.name+": a log line with the instance, the result and "+tc.logs, func() bool {
			return logLine(p.logs.String(), uuid, tc.result, tc.logs)
		})
	}
	for _, secret := range []string{"secret-body", "secret-banner", "Secret-Pad", "secret-path", "Forbidden"} {
		if strings.Contains(p.logs.String(), secret) {
			t.Errorf("the log holds %q", secret)
		}
	}
}

// logLine reports whether one line of logs holds every string of want.
func logLine(logs string, want ...string) bool {
	for _, line := range strings.Split(logs, "\n") {
		all := true
		for _, w := range want {
			all = all && strings.Contains(line, w)
		}
		if all {
			return true
		}
	}
	return false
}

// A path that could inject anything is refused with 502 before any
// connection: no byte reaches any socket of the host. (A host that could is
// refused by relay.AppendConnect, TestAppendConnectRefuses; the token stores
// already refuse such records.)
func TestConnectInjectionRefused(t *testing.T) {
	p := startProxy(t, nil)
	requests := make(chan string, 10)
	b := startBackend(t, connectHost("HTTP/1.1 200 OK\r\n\r\n", requests))
	for _, bad := range []string{"/x HTTP/1.1\r\nHost: evil\r\n\r\nGET /", "/a\nb", "/a\rb", "/a b", "/a\tb", "/a\x00", "/é", "relative", "/" + strings.Repeat("a", 1024)} {
		resp := dial(t, p.addr, req{token: p.mint(b.port(), func(r *record) { r.InternalAccessPath = &bad })})
		if resp.resp.StatusCode != 502 {
			t.Errorf("path %q: status %d", bad, resp.resp.StatusCode)
		}
	}
	if b.accepts.Load() != 0 {
		t.Fatal("an invalid record reached the compute host")
	}
	if m := metricsText(p); !strings.Contains(m, `consoleproxy_sessions_total{result="bad_access_path"} 9`) {
		t.Errorf("bad_access_path not counted 9 times:\n%s", m)
	}
	if strings.Contains(p.logs.String(), "evil") {
		t.Fatal("the log holds an access path")
	}
}

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
