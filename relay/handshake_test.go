package relay

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

type shakeResult struct {
	fd    int
	first []byte
	err   error
}

// fakeConnect runs a CONNECT exchange against a fake compute host that
// reads the request and then plays answer (nil: stays silent).
func fakeConnect(t *testing.T, answer func(host net.Conn), timeout time.Duration) (shakeResult, string) {
	t.Helper()
	r := newRelay(t, Config{Pollers: 1})
	fd, host := pair(t)
	req := AppendConnect(nil, "/console?token=x", "10.1.2.3", 5900)
	got := make(chan string, 1)
	go func() {
		b := make([]byte, len(req))
		_, _ = io.ReadFull(host, b)
		got <- string(b)
		answer(host)
	}()
	res := make(chan shakeResult, 1)
	r.Handshake(fd, req, timeout, func(fd int, first []byte, err error) { res <- shakeResult{fd, first, err} })
	select {
	case out := <-res:
		if out.fd >= 0 {
			unix.Close(out.fd)
		}
		return out, <-got
	case <-time.After(20 * time.Second):
		t.Fatal("no handshake result")
	}
	return shakeResult{}, ""
}

func TestHandshake(t *testing.T) {
	write := func(s string) func(net.Conn) { return func(h net.Conn) { _, _ = io.WriteString(h, s) } }
	tests := []struct {
		name   string
		answer func(net.Conn)
		err    error
		first  string
	}{
		{"200 then console bytes in the same write", write("HTTP/1.1 200 OK\r\n\r\nRFB 003.008\n"), nil, "RFB 003.008\n"},
		{"answer in 1-byte writes", func(h net.Conn) {
			for _, c := range []byte("HTTP/1.1 200 Connection established\r\nX: y\r\n\r\n") {
				_, _ = h.Write([]byte{c})
				time.Sleep(time.Millisecond)
			}
		}, nil, ""},
		{"Content-Length in a 2xx is ignored", write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nxy"), nil, "xy"},
		{"non-2xx", write("HTTP/1.1 502 Bad Gateway\r\n\r\n"), ErrConnectRefused, ""},
		{"200 in a reason phrase", write("HTTP/1.1 403 200 OK\r\n\r\n"), ErrConnectRefused, ""},
		{"endless header lines", func(h net.Conn) {
			_, _ = io.WriteString(h, "HTTP/1.1 200 OK\r\n")
			for i := 0; i < 5000; i++ {
				if _, err := io.WriteString(h, "X-Pad: 0123456789\r\n"); err != nil {
					return
				}
			}
		}, ErrConnectTooLarge, ""},
		{"close mid-answer", func(h net.Conn) { _, _ = io.WriteString(h, "HTTP/1.1 200 O"); h.Close() }, ErrConnectClosed, ""},
		{"silence", func(net.Conn) {}, ErrConnectTimeout, ""},
	}
	for _, tc := range tests {
		res, request := fakeConnect(t, tc.answer, 300*time.Millisecond)
		if request != "CONNECT /console?token=x HTTP/1.1\r\nHost: 10.1.2.3:5900\r\n\r\n" {
			t.Fatalf("%s: request %q", tc.name, request)
		}
		if !errors.Is(res.err, tc.err) || string(res.first) != tc.first || (res.err == nil) != (res.fd >= 0) {
			t.Errorf("%s: fd %d first %q err %v", tc.name, res.fd, res.first, res.err)
		}
		if tc.err == ErrConnectRefused && !strings.Contains(res.err.Error(), "0") {
			t.Errorf("%s: the status code is not in %v", tc.name, res.err)
		}
	}
}
