//go:build linux

package relay

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

// outcome is everything a CONNECT answer's parse decides, as a comparable
// string: the result, the status code and the console bytes.
func outcome(chunks ...[]byte) string {
	var p ConnectParser
	for i, c := range chunks {
		done, rest, err := p.Feed(c)
		if err != nil {
			return fmt.Sprintf("%s status %d", errClass(err), p.Status())
		}
		if done {
			first := append([]byte(nil), rest...)
			for _, later := range chunks[i+1:] {
				first = append(first, later...)
			}
			return fmt.Sprintf("ok status %d first %q", p.Status(), first)
		}
	}
	return fmt.Sprintf("incomplete status %d", p.Status())
}

func errClass(err error) string {
	for _, e := range []error{ErrConnectRefused, ErrConnectMalformed, ErrConnectTooLarge} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	return "unexpected " + err.Error()
}

// connectAnswers are CONNECT answers and what they must yield: RFC 9110
// §9.3.6 (2xx only, no body), RFC 9112 §2.2 (CRLF), §4 (status line),
// §5 (field lines).
var connectAnswers = []struct {
	name, answer, want string
}{
	{"200", "HTTP/1.1 200 OK\r\n\r\n", `ok status 200 first ""`},
	{"console bytes after the head", "HTTP/1.1 200 Connection established\r\n\r\nRFB 003.008\n", `ok status 200 first "RFB 003.008\n"`},
	{"HTTP/1.0 and 204", "HTTP/1.0 204 No Content\r\nX: y\r\n\r\n", `ok status 204 first ""`},
	{"299", "HTTP/1.1 299 Whatever\r\n\r\nz", `ok status 299 first "z"`},
	{"no reason phrase (§4: SP then empty)", "HTTP/1.1 200 \r\n\r\nx", `ok status 200 first "x"`},
	{"no reason phrase nor its SP", "HTTP/1.1 200\r\n\r\nx", `ok status 200 first "x"`},
	{"obs-text in the reason phrase", "HTTP/1.1 200 D\xe9j\xe0\r\n\r\n", `ok status 200 first ""`},
	{"Content-Length and Transfer-Encoding ignored (§9.3.6)",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nRFB 003.008\n", `ok status 200 first "RFB 003.008\n"`},
	{"field value with HTAB and obs-text", "HTTP/1.1 200 OK\r\nVia:\t1.1 pr\xf6xy\r\n\r\n", `ok status 200 first ""`},
	{"empty field value", "HTTP/1.1 200 OK\r\nX-Empty:\r\n\r\n", `ok status 200 first ""`},
	{"obs-fold continues a field (§5.2)", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\nq", `ok status 200 first "q"`},
	{"a blank line after the head is console data", "HTTP/1.1 200 OK\r\n\r\n\r\n\r\n", `ok status 200 first "\r\n\r\n"`},
	{"403", "HTTP/1.1 403 Forbidden\r\n\r\n", `CONNECT answered with a non-2xx status status 403`},
	{"407 from a proxy", "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n", `CONNECT answered with a non-2xx status status 407`},
	{"200 in the reason phrase of a 404", "HTTP/1.1 404 not 200 OK\r\n\r\n", `CONNECT answered with a non-2xx status status 404`},
	{"non-2xx without reason", "HTTP/1.0 502\r\n\r\n", `CONNECT answered with a non-2xx status status 502`},
	{"1xx is not a CONNECT success", "HTTP/1.1 100 Continue\r\n\r\n", `CONNECT answered with a non-2xx status status 100`},
	{"302", "HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\n", `CONNECT answered with a non-2xx status status 302`},
	{"refused as soon as the code is known", "HTTP/1.1 500 ", `CONNECT answered with a non-2xx status status 500`},
	{"HTTP/2", "HTTP/2 200 OK\r\n\r\n", `malformed CONNECT answer status 0`},
	{"HTTP/1.2", "HTTP/1.2 200 OK\r\n\r\n", `malformed CONNECT answer status 0`},
	{"lower-case version", "http/1.1 200 OK\r\n\r\n", `malformed CONNECT answer status 0`},
	{"four digits", "HTTP/1.1 2000 OK\r\n\r\n", `malformed CONNECT answer status 0`},
	{"two digits", "HTTP/1.1 20 OK\r\n\r\n", `malformed CONNECT answer status 0`},
	{"two spaces", "HTTP/1.1  200 OK\r\n\r\n", `malformed CONNECT answer status 0`},
	{"status line cut short", "HTTP/1.1 20\r\n\r\n", `malformed CONNECT answer status 0`},
	{"bare LF", "HTTP/1.1 200 OK\n\n", `malformed CONNECT answer status 200`},
	{"bare CR", "HTTP/1.1 200 OK\rX\r\n\r\n", `malformed CONNECT answer status 200`},
	{"CTL in the reason phrase", "HTTP/1.1 200 O\x01K\r\n\r\n", `malformed CONNECT answer status 200`},
	{"NUL in a field value", "HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n", `malformed CONNECT answer status 200`},
	{"space before the colon (§5.1)", "HTTP/1.1 200 OK\r\nX : y\r\n\r\n", `malformed CONNECT answer status 200`},
	{"field line without a colon", "HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", `malformed CONNECT answer status 200`},
	{"empty field name", "HTTP/1.1 200 OK\r\n: y\r\n\r\n", `malformed CONNECT answer status 200`},
	{"whitespace before the first field (§2.2)", "HTTP/1.1 200 OK\r\n X: y\r\n\r\n", `malformed CONNECT answer status 200`},
	{"an SSH banner", "SSH-2.0-OpenSSH_9.2\r\n", `malformed CONNECT answer status 0`},
	{"an RFB server that ignores CONNECT", "RFB 003.008\n", `malformed CONNECT answer status 0`},
	{"endless header lines", "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-A: b\r\n", 2000), `CONNECT answer head too large status 200`},
	{"endless reason phrase", "HTTP/1.1 200 " + strings.Repeat("O", MaxConnectAnswer), `CONNECT answer head too large status 200`},
	{"head of exactly MaxConnectAnswer bytes", "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", MaxConnectAnswer-len("HTTP/1.1 200 OK\r\nX: \r\n\r\n")) + "\r\n\r\nc",
		`ok status 200 first "c"`},
	{"one byte over", "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", MaxConnectAnswer-len("HTTP/1.1 200 OK\r\nX: \r\n\r\n")+1) + "\r\n\r\nc",
		`CONNECT answer head too large status 200`},
	{"incomplete", "HTTP/1.1 200 OK\r\nX: y\r\n", `incomplete status 200`},
	{"incomplete status line", "HTTP/1.1 2", `incomplete status 0`},
}

// Each answer yields the same outcome fed whole, one byte at a time, and
// split in two at every point.
func TestConnectParser(t *testing.T) {
	for _, tc := range connectAnswers {
		b := []byte(tc.answer)
		if got := outcome(b); got != tc.want {
			t.Errorf("%s: whole: %s, want %s", tc.name, got, tc.want)
			continue
		}
		bytewise := make([][]byte, len(b))
		for i := range b {
			bytewise[i] = b[i : i+1]
		}
		if got := outcome(bytewise...); got != tc.want {
			t.Errorf("%s: byte by byte: %s", tc.name, got)
		}
		for cut := 0; cut <= len(b) && len(b) < 200; cut++ {
			if got := outcome(b[:cut], b[cut:]); got != tc.want {
				t.Errorf("%s: split at %d: %s", tc.name, cut, got)
			}
		}
	}
}

// A failed parser stays failed; a finished one takes no more head bytes.
func TestConnectParserSticky(t *testing.T) {
	var p ConnectParser
	if _, _, err := p.Feed([]byte("HTTP/1.1 404 x\r\n")); !errors.Is(err, ErrConnectRefused) {
		t.Fatal(err)
	}
	if done, rest, err := p.Feed([]byte("\r\n")); done || rest != nil || !errors.Is(err, ErrConnectRefused) {
		t.Fatalf("after a refusal: %v %q %v", done, rest, err)
	}
	p = ConnectParser{}
	if done, _, err := p.Feed([]byte("HTTP/1.1 200 OK\r\n\r\n")); !done || err != nil {
		t.Fatal(done, err)
	}
	if done, rest, err := p.Feed([]byte("more")); !done || rest != nil || err != nil {
		t.Fatalf("after the head: %v %q %v", done, rest, err)
	}
}

// The success path allocates nothing (CONVENTIONS: hot paths say so).
func TestConnectParserAllocs(t *testing.T) {
	if testutil.Race {
		t.Skip("the race detector allocates")
	}
	answer := []byte("HTTP/1.1 200 Connection established\r\nVia: 1.1 proxy\r\nContent-Length: 0\r\n\r\nRFB 003.008\n")
	allocs := testing.AllocsPerRun(100, func() {
		var p ConnectParser
		for i := range answer {
			if done, _, err := p.Feed(answer[i : i+1]); done || err != nil {
				break
			}
		}
		if done, _, err := (&ConnectParser{}).Feed(answer); !done || err != nil {
			panic("no answer")
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per answer, want 0", allocs)
	}
}

// FuzzConnectResponse: the outcome and the console bytes do not depend on
// how the answer is split; cuts gives the sizes of the first pieces.
func FuzzConnectResponse(f *testing.F) {
	for _, tc := range connectAnswers {
		f.Add([]byte(tc.answer), []byte{3, 7, 1})
	}
	f.Fuzz(func(t *testing.T, answer, cuts []byte) {
		whole := outcome(answer)
		var chunks [][]byte
		rest := answer
		for _, c := range cuts {
			n := min(int(c), len(rest))
			chunks, rest = append(chunks, rest[:n]), rest[n:]
		}
		chunks = append(chunks, rest)
		if split := outcome(chunks...); split != whole {
			t.Fatalf("whole: %s; split %v: %s", whole, cuts, split)
		}
		if strings.HasPrefix(whole, "unexpected") {
			t.Fatal(whole)
		}
		checkAccepted(t, answer)
	})
}

// checkAccepted is a naive reference for what an accepted head looks like
// (RFC 9112 §2.1, §4): an HTTP/1.x 2xx status line, CRLF line ends only, no
// control bytes but HTAB, the first empty line ending it, within the cap.
func checkAccepted(t *testing.T, answer []byte) {
	var p ConnectParser
	done, rest, err := p.Feed(answer)
	if !done || err != nil {
		return
	}
	head := string(answer[:len(answer)-len(rest)])
	switch {
	case len(head) > MaxConnectAnswer:
		t.Fatalf("accepted a head of %d bytes", len(head))
	case !strings.HasPrefix(head, "HTTP/1.0 2") && !strings.HasPrefix(head, "HTTP/1.1 2"):
		t.Fatalf("accepted status line %q", head)
	case strings.Index(head, "\r\n\r\n") != len(head)-4:
		t.Fatalf("the head %q does not end at its first empty line", head)
	case strings.Count(head, "\n") != strings.Count(head, "\r\n") || strings.Count(head, "\r") != strings.Count(head, "\r\n"):
		t.Fatalf("bare CR or LF accepted in %q", head)
	case p.Status() < 200 || p.Status() > 299:
		t.Fatalf("status %d accepted", p.Status())
	}
	for _, c := range []byte(head) {
		if c < ' ' && c != '\t' && c != '\r' && c != '\n' || c == 0x7f {
			t.Fatalf("control byte %#x accepted in %q", c, head)
		}
	}
}
