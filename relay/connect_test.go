package relay

import (
	"errors"
	"strings"
	"testing"
)

func TestValidAccessPath(t *testing.T) {
	good := []string{"/", "/websockify", "/path?token=abc", "/a/b%20c?x=1&y=/z?", "/~user/;p=1:@!$&'()*+,="}
	bad := []string{"", "path", "/a b", "/a\r\nHost: evil", "/a\nX", "/a\x00", "/é", "/%zz", "/%4", "/a#frag",
		"http://host/", "/" + strings.Repeat("a", MaxAccessPath)}
	for _, p := range good {
		if !ValidAccessPath(p) {
			t.Errorf("%q refused", p)
		}
	}
	for _, p := range bad {
		if ValidAccessPath(p) {
			t.Errorf("%q accepted", p)
		}
	}
}

func TestAppendConnect(t *testing.T) {
	if got := string(AppendConnect(nil, "/console?x=1", "10.0.0.5", 5900)); got != "CONNECT /console?x=1 HTTP/1.1\r\nHost: 10.0.0.5:5900\r\n\r\n" {
		t.Fatalf("%q", got)
	}
	if got := string(AppendConnect(nil, "/c", "2001:db8::5", 443)); got != "CONNECT /c HTTP/1.1\r\nHost: [2001:db8::5]:443\r\n\r\n" {
		t.Fatalf("%q", got)
	}
}

// CONNECT answers (RFC 9110 §9.3.6, RFC 9112 §4), fed whole and one byte at
// a time: the same outcome and the same console bytes.
func TestConnectParser(t *testing.T) {
	tests := []struct {
		name, answer string
		err          error
		status       int
		rest         string
		incomplete   bool
	}{
		{"200", "HTTP/1.1 200 OK\r\n\r\n", nil, 200, "", false},
		{"200 with console bytes", "HTTP/1.1 200 Connection established\r\n\r\nRFB 003.008\n", nil, 200, "RFB 003.008\n", false},
		{"HTTP/1.0 204", "HTTP/1.0 204 No Content\r\nX: y\r\n\r\n", nil, 204, "", false},
		{"no reason phrase", "HTTP/1.1 200\r\n\r\nx", nil, 200, "x", false},
		{"Content-Length ignored", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nRFB 003.008\n", nil, 200, "RFB 003.008\n", false},
		{"non-2xx", "HTTP/1.1 403 Forbidden\r\n\r\n", ErrConnectRefused, 403, "", false},
		{"200 in the reason of a 404", "HTTP/1.1 404 not 200 OK\r\n\r\n", ErrConnectRefused, 404, "", false},
		{"302", "HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\n", ErrConnectRefused, 302, "", false},
		{"HTTP/2", "HTTP/2 200 OK\r\n\r\n", ErrConnectMalformed, 0, "", false},
		{"HTTP/1.1 2000", "HTTP/1.1 2000\r\n\r\n", ErrConnectMalformed, 0, "", false},
		{"lower-case", "http/1.1 200 OK\r\n\r\n", ErrConnectMalformed, 0, "", false},
		{"bare LF", "HTTP/1.1 200 OK\n\n", ErrConnectMalformed, 0, "", false},
		{"garbage", "SSH-2.0-OpenSSH\r\n", ErrConnectMalformed, 0, "", false},
		{"endless headers", "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-A: b\r\n", 2000), ErrConnectTooLarge, 200, "", false},
		{"incomplete", "HTTP/1.1 200 OK\r\nX: y\r\n", nil, 200, "", true},
	}
	for _, tc := range tests {
		for _, split := range []bool{false, true} {
			var p ConnectParser
			var done bool
			var rest []byte
			var err error
			if split {
				for i := 0; i < len(tc.answer) && !done && err == nil; i++ {
					done, rest, err = p.Feed([]byte{tc.answer[i]})
					if done && i+1 < len(tc.answer) {
						rest = append(rest, tc.answer[i+1:]...)
					}
				}
			} else {
				done, rest, err = p.Feed([]byte(tc.answer))
			}
			if !errors.Is(err, tc.err) || done == tc.incomplete && tc.err == nil || p.Status() != tc.status || string(rest) != tc.rest {
				t.Errorf("%s (split %v): done %v rest %q err %v status %d", tc.name, split, done, rest, err, p.Status())
			}
		}
	}
}

// FuzzConnectParser: the outcome and the console bytes do not depend on how
// the answer is split.
func FuzzConnectParser(f *testing.F) {
	for _, s := range []string{"HTTP/1.1 200 OK\r\n\r\nRFB", "HTTP/1.0 403 x\r\n\r\n", "HTTP/1.1 200\r\nA: b\r\n\r\n", "x\n"} {
		f.Add(s, uint16(3))
	}
	f.Fuzz(func(t *testing.T, answer string, cut uint16) {
		whole := runParser([]byte(answer), len(answer))
		split := runParser([]byte(answer), int(cut)%(len(answer)+1))
		if whole != split {
			t.Fatalf("whole %q, split at %d %q", whole, cut, split)
		}
	})
}

func runParser(b []byte, cut int) string {
	var p ConnectParser
	parts := [][]byte{b[:cut], b[cut:]}
	for i, part := range parts {
		done, rest, err := p.Feed(part)
		for _, e := range []error{ErrConnectRefused, ErrConnectMalformed, ErrConnectTooLarge} {
			if errors.Is(err, e) {
				return "err " + e.Error()
			}
		}
		if done {
			out := append([]byte(nil), rest...)
			for _, later := range parts[i+1:] {
				out = append(out, later...)
			}
			return "done " + string(out)
		}
	}
	return "incomplete"
}
