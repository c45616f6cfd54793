//go:build linux

package relay

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

type shakeResult struct {
	fd    int
	first []byte
	err   error
}

const testRequest = "CONNECT /console?token=x HTTP/1.1\r\nHost: 10.1.2.3:5900\r\n\r\n"

// tcpPair is a loopback TCP connection: the proxy's side as a non-blocking
// fd (as Detach hands it over) and the fake compute host's side.
func tcpPair(tb testing.TB) (int, net.Conn) {
	tb.Helper()
	c, host := testutil.TCPPair(tb)
	fd, err := Detach(c.(*net.TCPConn))
	if err != nil {
		tb.Fatal(err)
	}
	return fd, host
}

// fakeConnect runs a CONNECT exchange against a fake compute host that
// reads the request and then plays answer. It returns the outcome and the
// bytes the host received before answering. A socket handed back is closed
// at the end of the test.
func fakeConnect(t *testing.T, answer func(host net.Conn), timeout time.Duration) (shakeResult, string) {
	t.Helper()
	r := newRelay(t, Config{Pollers: 1})
	fd, host := tcpPair(t)
	req, err := AppendConnect(nil, "/console?token=x", "10.1.2.3", 5900)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() {
		b := make([]byte, len(req))
		_, _ = io.ReadFull(host, b)
		got <- string(b)
		answer(hostConn{host, fd})
	}()
	res := make(chan shakeResult, 1)
	r.tunnel(fd, [][]byte{req}, timeout, func(fd int, first []byte, err error) { res <- shakeResult{fd, first, err} })
	select {
	case out := <-res:
		if out.fd >= 0 {
			t.Cleanup(func() { unix.Close(out.fd) })
		}
		return out, <-got
	case <-time.After(20 * time.Second):
		t.Fatal("no handshake result")
	}
	return shakeResult{}, ""
}

// hostConn is the fake host's end of a fakeConnect; relayFD is the relay's.
type hostConn struct {
	net.Conn
	relayFD int
}

// taken reports whether the relay has read everything the host sent
// (SIOCINQ on its end is empty; an end it closed counts as taken).
func (h hostConn) taken() bool {
	n, err := unix.IoctlGetInt(h.relayFD, unix.SIOCINQ)
	return err != nil || n == 0
}

// writes answers with each part in its own write, each read by the relay
// before the next is sent, so that partial answers are parsed as such.
func writes(parts ...string) func(net.Conn) {
	return func(h net.Conn) {
		for _, p := range parts {
			if _, err := io.WriteString(h, p); err != nil {
				return
			}
			if hc, ok := h.(hostConn); ok {
				// Not a failure when it does not drain: the relay may have
				// stopped reading (an error answer); only the pacing is lost.
				testutil.Eventually(time.Second, hc.taken)
			}
		}
	}
}

func bytewise(s string) []string {
	out := make([]string, len(s))
	for i := range s {
		out[i] = s[i : i+1]
	}
	return out
}

// The cases against a fake CONNECT endpoint, on a real poller.
func TestHandshake(t *testing.T) {
	tests := []struct {
		name   string
		answer func(net.Conn)
		err    error
		first  string
	}{
		{"console bytes in the same write as the answer", writes("HTTP/1.1 200 OK\r\n\r\nRFB 003.008\n"), nil, "RFB 003.008\n"},
		{"answer in 1-byte writes", writes(bytewise("HTTP/1.1 200 Connection established\r\nX: y\r\n\r\n")...), nil, ""},
		{"Content-Length in a 2xx is ignored", writes("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nxy"), nil, "xy"},
		{"non-2xx", writes("HTTP/1.1 502 Bad Gateway\r\n\r\n"), ErrConnectRefused, ""},
		{"200 in a non-2xx reason phrase", writes("HTTP/1.1 403 200 OK\r\n\r\n"), ErrConnectRefused, ""},
		{"not HTTP", writes("RFB 003.008\n"), ErrConnectMalformed, ""},
		{"endless header lines", func(h net.Conn) {
			_, _ = io.WriteString(h, "HTTP/1.1 200 OK\r\n")
			for i := 0; i < 5000; i++ {
				if _, err := io.WriteString(h, "X-Pad: 0123456789\r\n"); err != nil {
					return
				}
			}
		}, ErrConnectTooLarge, ""},
		{"close mid-answer", func(h net.Conn) { _, _ = io.WriteString(h, "HTTP/1.1 200 O"); h.Close() }, ErrConnectClosed, ""},
		{"close before any answer", func(h net.Conn) { h.Close() }, ErrConnectClosed, ""},
		{"silence", func(net.Conn) {}, ErrConnectTimeout, ""},
	}
	for _, tc := range tests {
		res, request := fakeConnect(t, tc.answer, 300*time.Millisecond)
		if request != testRequest {
			t.Fatalf("%s: request %q", tc.name, request)
		}
		if !errors.Is(res.err, tc.err) || string(res.first) != tc.first || (res.err == nil) != (res.fd >= 0) {
			t.Errorf("%s: fd %d first %q err %v", tc.name, res.fd, res.first, res.err)
		}
	}
}

// The status code of a refusal travels with the error (for the log).
func TestHandshakeRefusalCarriesStatus(t *testing.T) {
	res, _ := fakeConnect(t, writes("HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"), 5*time.Second)
	if !errors.Is(res.err, ErrConnectRefused) || res.err.Error() != ErrConnectRefused.Error()+": 407" {
		t.Fatalf("%v", res.err)
	}
}

// Console bytes beyond one read stay in the socket: the answer's tail
// (first) and what the socket still holds are the host's bytes, intact and
// in order.
func TestHandshakeConsoleBytesIntact(t *testing.T) {
	console := pattern(3 * connectAnswerRead)
	res, _ := fakeConnect(t, writes("HTTP/1.1 200 OK\r\n\r\n"+string(console)), 5*time.Second)
	if res.err != nil {
		t.Fatal(res.err)
	}
	if err := unix.SetNonblock(res.fd, false); err != nil {
		t.Fatal(err)
	}
	got := append([]byte(nil), res.first...)
	buf := make([]byte, 4096)
	for len(got) < len(console) {
		n, err := unix.Read(res.fd, buf)
		if err != nil || n == 0 {
			t.Fatalf("after %d bytes: %v", len(got), err)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.Equal(got, console) {
		t.Fatal("console bytes lost, repeated or reordered")
	}
}

// A chain (a forward proxy's CONNECT, then the access path's) runs on one
// poller: the second request is written only once the first answer is
// complete; console bytes count only after the last answer; a failure names
// its step.
func TestHandshakeChain(t *testing.T) {
	proxyReq := "CONNECT 10.1.2.3:5900 HTTP/1.1\r\nHost: 10.1.2.3:5900\r\n\r\n"
	tests := []struct {
		name           string
		first, second  string
		err            error
		step           int
		console        string
		secondRequired bool
	}{
		{"both 200", "HTTP/1.1 200 Connection established\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\nRFB", nil, 0, "RFB", true},
		{"proxy refuses", "HTTP/1.1 403 Forbidden\r\n\r\n", "", ErrConnectRefused, 0, "", false},
		{"bytes before the second request", "HTTP/1.1 200 OK\r\n\r\nearly", "", ErrConnectMalformed, 0, "", false},
		{"host refuses", "HTTP/1.1 200 OK\r\n\r\n", "HTTP/1.1 404 Not Found\r\n\r\n", ErrConnectRefused, 1, "", true},
	}
	for _, tc := range tests {
		r := newRelay(t, Config{Pollers: 1})
		fd, host := tcpPair(t)
		seen := make(chan string, 2)
		go func() {
			b := make([]byte, len(proxyReq))
			_, _ = io.ReadFull(host, b)
			seen <- string(b)
			_, _ = io.WriteString(host, tc.first)
			b = make([]byte, len(testRequest))
			if _, err := io.ReadFull(host, b); err == nil {
				seen <- string(b)
				_, _ = io.WriteString(host, tc.second)
			}
			close(seen)
		}()
		res := make(chan shakeResult, 1)
		r.tunnel(fd, [][]byte{[]byte(proxyReq), []byte(testRequest)}, 5*time.Second,
			func(fd int, first []byte, err error) { res <- shakeResult{fd, first, err} })
		out := <-res
		var he *tunnelError
		switch {
		case tc.err == nil && (out.err != nil || string(out.first) != tc.console || out.fd < 0):
			t.Errorf("%s: %+v", tc.name, out)
		case tc.err != nil && (!errors.Is(out.err, tc.err) || !errors.As(out.err, &he) || he.step != tc.step || out.fd != -1):
			t.Errorf("%s: %+v, want %v at step %d", tc.name, out, tc.err, tc.step)
		}
		if out.fd >= 0 {
			unix.Close(out.fd)
		} else {
			host.Close()
		}
		var got []string
		for s := range seen {
			got = append(got, s)
		}
		if got[0] != proxyReq || (len(got) == 2) != tc.secondRequired || len(got) == 2 && got[1] != testRequest {
			t.Errorf("%s: requests %q", tc.name, got)
		}
	}
}

// Closing the relay ends an exchange in progress; its socket is closed.
func TestHandshakeRelayClose(t *testing.T) {
	r, err := New(Config{Pollers: 1})
	if err != nil {
		t.Fatal(err)
	}
	fd, host := tcpPair(t)
	res := make(chan shakeResult, 1)
	r.tunnel(fd, [][]byte{[]byte(testRequest)}, time.Minute, func(fd int, first []byte, err error) { res <- shakeResult{fd, first, err} })
	b := make([]byte, len(testRequest))
	if _, err := io.ReadFull(host, b); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if out := <-res; out.err == nil || out.fd != -1 {
		t.Fatalf("%+v", out)
	}
	if n, err := host.Read(b); n != 0 || err != io.EOF {
		t.Fatalf("the socket was not closed: %d %v", n, err)
	}
}

// BenchmarkHandshake is the proxy side of one CONNECT exchange over
// loopback TCP. "poller": Relay.tunnel (command, write, epoll, read,
// parse, done on the poller); "blocking": the same bytes written and read
// with blocking calls on the caller's goroutine, as a goroutine-per-session
// design would. The answer is queued before each exchange, so no fake host's
// wake-up is counted.
func BenchmarkHandshake(b *testing.B) {
	req := []byte(testRequest)
	reqs := [][]byte{req}
	answer := []byte("HTTP/1.1 200 Connection established\r\n\r\n")
	sent := make([]byte, len(req))
	b.Run("poller", func(b *testing.B) {
		r, err := New(Config{Pollers: 1})
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		fd, host := tcpPair(b)
		res := make(chan int, 1)
		done := func(fd int, _ []byte, err error) {
			if err != nil {
				panic(err)
			}
			res <- fd
		}
		b.ReportAllocs()
		for b.Loop() {
			queueAnswer(b, host, answer)
			r.tunnel(fd, reqs, time.Minute, done)
			fd = <-res
			drainRequest(b, host, sent)
		}
		unix.Close(fd)
	})
	b.Run("blocking", func(b *testing.B) {
		fd, host := tcpPair(b)
		defer unix.Close(fd)
		if err := unix.SetNonblock(fd, false); err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, connectAnswerRead)
		b.ReportAllocs()
		for b.Loop() {
			queueAnswer(b, host, answer)
			if _, err := unix.Write(fd, req); err != nil {
				b.Fatal(err)
			}
			var p ConnectParser
			for done := false; !done; {
				n, err := unix.Read(fd, buf)
				if err != nil || n == 0 {
					b.Fatal(err)
				}
				if done, _, err = p.Feed(buf[:n]); err != nil {
					b.Fatal(err)
				}
			}
			drainRequest(b, host, sent)
		}
	})
}

func queueAnswer(b *testing.B, host net.Conn, answer []byte) {
	if _, err := host.Write(answer); err != nil {
		b.Fatal(err)
	}
}

func drainRequest(b *testing.B, host net.Conn, buf []byte) {
	if _, err := io.ReadFull(host, buf); err != nil {
		b.Fatal(err)
	}
}
