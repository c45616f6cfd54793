package wsframe

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// head joins lines with CRLF and ends the head with a blank line.
func head(lines ...string) string { return strings.Join(lines, "\r\n") + "\r\n\r\n" }

// rfcHandshake is the client handshake of RFC 6455 §1.3.
var rfcHandshake = head(
	"GET /chat HTTP/1.1",
	"Host: server.example.com",
	"Upgrade: websocket",
	"Connection: Upgrade",
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
	"Origin: http://example.com",
	"Sec-WebSocket-Protocol: chat, superchat",
	"Sec-WebSocket-Version: 13")

// noVNCRequest is what Chromium sends when noVNC opens its WebSocket.
var noVNCRequest = head(
	"GET /websockify?token=0b2c8e3f-1c1e-4a55-9a39-2f6f0e4c1d7a HTTP/1.1",
	"Host: console.example.com:6080",
	"Connection: Upgrade",
	"Pragma: no-cache",
	"Cache-Control: no-cache",
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
	"Upgrade: websocket",
	"Origin: https://console.example.com:6080",
	"Sec-WebSocket-Version: 13",
	"Accept-Encoding: gzip, deflate, br, zstd",
	"Accept-Language: en-US,en;q=0.9",
	"Cookie: _ga=GA1.1.123; token=0b2c8e3f-1c1e-4a55-9a39-2f6f0e4c1d7a",
	"Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==",
	"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
	"Sec-WebSocket-Protocol: binary")

// qs quotes b, telling nil from empty.
func qs(b []byte) string {
	if b == nil {
		return "nil"
	}
	return fmt.Sprintf("%q", b)
}

// describe renders a Parse result, for comparing two ways of parsing.
func describe(n int, r *Request, err error) string {
	var he *HTTPError
	switch {
	case errors.As(err, &he):
		return fmt.Sprintf("n=%d status=%d %s", n, he.Status, he.Reason)
	case err != nil:
		return fmt.Sprintf("n=%d err=%v", n, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "n=%d %s %s %s host=%s origin=%s/%v key=%s ver=%s up=%s conn=%s path=%s query=%s",
		n, qs(r.Method), qs(r.Target), qs(r.Proto), qs(r.Host), qs(r.Origin), r.HasOrigin,
		qs(r.Key), qs(r.Version), qs(r.Upgrade), qs(r.Connection), qs(r.Path()), qs(r.Query()))
	for _, h := range r.Headers {
		fmt.Fprintf(&b, " [%s: %s]", qs(h.Name), qs(h.Value))
	}
	return b.String()
}

// parseWhole parses a complete input with a fresh parser.
func parseWhole(input []byte, lim RequestLimits) (int, *Request, error) {
	var p RequestParser
	r := new(Request)
	n, err := p.Parse(input, lim, r)
	return n, r, err
}

// parseGrowing feeds growing prefixes of input ending at cuts (clamped, in
// order), then the whole, stopping at the first result that is not
// ErrIncomplete. It fails t if the parser rescans bytes.
func parseGrowing(t testing.TB, input []byte, lim RequestLimits, cuts []int) (int, *Request, error) {
	var p RequestParser
	r := new(Request)
	for _, c := range append(cuts, len(input)) {
		c = min(max(c, 0), len(input))
		n, err := p.Parse(input[:c], lim, r)
		if err != ErrIncomplete {
			return n, r, err
		}
		if p.scanned != c {
			t.Fatalf("after an incomplete prefix of %d bytes the parser scanned %d", c, p.scanned)
		}
	}
	return 0, r, ErrIncomplete
}

func statusOf(err error) int {
	var he *HTTPError
	switch {
	case err == nil:
		return 0
	case err == ErrIncomplete:
		return -1
	case errors.As(err, &he):
		return he.Status
	}
	return -2
}

type parseCase struct {
	name   string
	input  string
	lim    RequestLimits
	status int // 0 success, -1 ErrIncomplete, else the HTTP status
}

// parseCases cover every rule of Parse with a passing and a failing input.
var parseCases = []parseCase{
	{"RFC 6455 §1.3 handshake", rfcHandshake, RequestLimits{}, 0},
	{"noVNC from Chromium", noVNCRequest, RequestLimits{}, 0},
	{"plain GET for a static file", head("GET /vnc.html HTTP/1.1", "Host: h"), RequestLimits{}, 0},
	{"HEAD", head("HEAD /vnc.html HTTP/1.1", "Host: h"), RequestLimits{}, 0},
	{"incomplete head", "GET / HTTP/1.1\r\nHost: h\r\n", RequestLimits{}, -1},
	{"incomplete blank line", "GET / HTTP/1.1\r\nHost: h\r\n\r", RequestLimits{}, -1},
	// RFC 9112 §3: request-line = method SP request-target SP HTTP-version.
	{"absolute-form", head("GET http://h:6080/websockify?token=x HTTP/1.1", "Host: other"), RequestLimits{}, 0},
	{"absolute-form wss, scheme case", head("GET WSS://[::1]:6080/ HTTP/1.1", "Host: x"), RequestLimits{}, 0},
	{"absolute-form ftp", head("GET ftp://h/ HTTP/1.1", "Host: h"), RequestLimits{}, 400},
	{"absolute-form without path", head("GET http://h HTTP/1.1", "Host: h"), RequestLimits{}, 400},
	{"absolute-form with user info", head("GET http://u@h/ HTTP/1.1", "Host: h"), RequestLimits{}, 400},
	{"absolute-form empty host", head("GET http:///x HTTP/1.1", "Host: h"), RequestLimits{}, 400},
	{"asterisk-form", head("OPTIONS * HTTP/1.1", "Host: h"), RequestLimits{}, 400},
	{"authority-form", head("CONNECT h:80 HTTP/1.1", "Host: h"), RequestLimits{}, 400},
	{"space in target", head("GET /a b HTTP/1.1", "Host: h"), RequestLimits{}, 400},
	{"two spaces", head("GET  / HTTP/1.1", "Host: h"), RequestLimits{}, 400},
	{"trailing space", head("GET / HTTP/1.1 ", "Host: h"), RequestLimits{}, 400},
	{"tab in target", head("GET /a\tb HTTP/1.1", "Host: h"), RequestLimits{}, 400},
	{"DEL in target", head("GET /a\x7f HTTP/1.1", "Host: h"), RequestLimits{}, 400},
	{"high byte in target", head("GET /\xc3\xa9 HTTP/1.1", "Host: h"), RequestLimits{}, 400},
	{"NUL in target", head("GET /\x00 HTTP/1.1", "Host: h"), RequestLimits{}, 400},
	{"fragment in target", head("GET /#x HTTP/1.1", "Host: h"), RequestLimits{}, 400},
	{"query chars browsers leave", head("GET /?a={|}^`[]\\&b='\" HTTP/1.1", "Host: h"), RequestLimits{}, 0},
	{"method not a token", head("G(T / HTTP/1.1", "Host: h"), RequestLimits{}, 400},
	{"empty method", head(" / HTTP/1.1", "Host: h"), RequestLimits{}, 400},
	{"no version", head("GET /", "Host: h"), RequestLimits{}, 400},
	{"method only", head("GET", "Host: h"), RequestLimits{}, 400},
	{"lowercase version", head("GET / http/1.1", "Host: h"), RequestLimits{}, 400},
	{"HTTP/1.0", head("GET / HTTP/1.0", "Host: h"), RequestLimits{}, 400},
	{"HTTP/2.0", head("GET / HTTP/2.0", "Host: h"), RequestLimits{}, 400},
	{"HTTP/1.10", head("GET / HTTP/1.10", "Host: h"), RequestLimits{}, 400},
	{"empty line before request line", "\r\n" + head("GET / HTTP/1.1", "Host: h"), RequestLimits{}, 400},
	// RFC 9112 §2.2: lines end in CRLF; we refuse bare LF and bare CR.
	{"bare LF in request line", "GET / HTTP/1.1\nHost: h\r\n\r\n", RequestLimits{}, 400},
	{"bare LF after header", "GET / HTTP/1.1\r\nHost: h\n\r\n", RequestLimits{}, 400},
	{"bare LF blank line", "GET / HTTP/1.1\r\nHost: h\r\n\n", RequestLimits{}, 400},
	{"bare CR in value", head("GET / HTTP/1.1", "Host: h", "X: a\rb"), RequestLimits{}, 400},
	{"bare CR in request line", head("GET /\r HTTP/1.1", "Host: h"), RequestLimits{}, 400},
	// RFC 9112 §5, RFC 9110 §5.
	{"no colon", head("GET / HTTP/1.1", "Host: h", "Junk"), RequestLimits{}, 400},
	{"empty name", head("GET / HTTP/1.1", "Host: h", ": x"), RequestLimits{}, 400},
	{"space before colon", head("GET / HTTP/1.1", "Host : h"), RequestLimits{}, 400},
	{"tab before colon", head("GET / HTTP/1.1", "Host: h", "X\t: y"), RequestLimits{}, 400},
	{"name not a token", head("GET / HTTP/1.1", "Host: h", "X(y): z"), RequestLimits{}, 400},
	{"obs-fold SP", head("GET / HTTP/1.1", "Host: h", "X: a", " b"), RequestLimits{}, 400},
	{"obs-fold HT", head("GET / HTTP/1.1", "Host: h", "X: a", "\tb"), RequestLimits{}, 400},
	{"NUL in value", head("GET / HTTP/1.1", "Host: h", "X: a\x00b"), RequestLimits{}, 400},
	{"CTL in value", head("GET / HTTP/1.1", "Host: h", "X: \x01"), RequestLimits{}, 400},
	{"DEL in value", head("GET / HTTP/1.1", "Host: h", "X: \x7f"), RequestLimits{}, 400},
	{"HT and obs-text in value", head("GET / HTTP/1.1", "Host: h", "X: a\tb\xc3\xa9"), RequestLimits{}, 0},
	{"empty value", head("GET / HTTP/1.1", "Host: h", "X:"), RequestLimits{}, 0},
	{"OWS trimmed", head("GET / HTTP/1.1", "Host: \t h \t"), RequestLimits{}, 0},
	{"names ignore case", head("GET / HTTP/1.1", "hOsT: h", "ORIGIN: http://h"), RequestLimits{}, 0},
	{"empty Origin", head("GET / HTTP/1.1", "Host: h", "Origin:"), RequestLimits{}, 0},
	{"repeated Connection and Cookie", head("GET / HTTP/1.1", "Host: h", "Connection: keep-alive",
		"Cookie: a=1", "Connection: Upgrade", "Cookie: b=2"), RequestLimits{}, 0},
	{"duplicate Host", head("GET / HTTP/1.1", "Host: h", "host: h"), RequestLimits{}, 400},
	{"duplicate Origin", head("GET / HTTP/1.1", "Host: h", "Origin: http://h", "Origin: http://h"), RequestLimits{}, 400},
	{"duplicate Key", head("GET / HTTP/1.1", "Host: h", "Sec-WebSocket-Key: a", "Sec-WebSocket-Key: a"), RequestLimits{}, 400},
	{"duplicate Version", head("GET / HTTP/1.1", "Host: h", "Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 13"), RequestLimits{}, 400},
	{"duplicate Upgrade", head("GET / HTTP/1.1", "Host: h", "Upgrade: websocket", "Upgrade: websocket"), RequestLimits{}, 400},
	// RFC 9112 §3.2: Host is required, once, and valid.
	{"missing Host", head("GET / HTTP/1.1", "Origin: http://h"), RequestLimits{}, 400},
	{"Host with port", head("GET / HTTP/1.1", "Host: console.example.com:6080"), RequestLimits{}, 0},
	{"Host IPv6", head("GET / HTTP/1.1", "Host: [2001:db8::1]:443"), RequestLimits{}, 0},
	{"Host empty", head("GET / HTTP/1.1", "Host:"), RequestLimits{}, 400},
	{"Host empty port", head("GET / HTTP/1.1", "Host: h:"), RequestLimits{}, 400},
	{"Host port not digits", head("GET / HTTP/1.1", "Host: h:8a"), RequestLimits{}, 400},
	{"Host long port", head("GET / HTTP/1.1", "Host: h:123456"), RequestLimits{}, 400},
	{"Host user info", head("GET / HTTP/1.1", "Host: u@h"), RequestLimits{}, 400},
	{"Host space", head("GET / HTTP/1.1", "Host: a b"), RequestLimits{}, 400},
	{"Host open bracket", head("GET / HTTP/1.1", "Host: [::1"), RequestLimits{}, 400},
	{"Host junk after bracket", head("GET / HTTP/1.1", "Host: [::1]x"), RequestLimits{}, 400},
}

// capCases are the caps exactly at and one past their limits (431).
func capCases() []parseCase {
	line := func(n int) string { return "GET /" + strings.Repeat("a", n-len("GET / HTTP/1.1\r\n")) + " HTTP/1.1" }
	fields := func(n int) []string {
		l := []string{"GET / HTTP/1.1", "Host: h"}
		for i := 1; i < n; i++ {
			l = append(l, fmt.Sprintf("X-%d: v", i))
		}
		return l
	}
	small := RequestLimits{MaxRequestLine: 64, MaxHeaderBytes: 128, MaxHeaders: 4}
	pad := func(total int) string { // a head of exactly total bytes
		fixed := len(head("GET / HTTP/1.1", "Host: h", "X: "))
		return head("GET / HTTP/1.1", "Host: h", "X: "+strings.Repeat("v", total-fixed))
	}
	return []parseCase{
		{"request line at cap", head(line(64), "Host: h"), small, 0},
		{"request line one past cap", head(line(65), "Host: h"), small, 431},
		{"request line past cap, end not yet in", line(200)[:64], small, 431},
		{"request line one short of cap, no LF", line(200)[:63], small, -1},
		{"default request line at cap", head(line(8192), "Host: h"), RequestLimits{}, 0},
		{"default request line one past cap", head(line(8193), "Host: h"), RequestLimits{}, 431},
		{"head at cap", pad(128), small, 0},
		{"head one past cap", pad(129), small, 431},
		{"head past cap, end not yet in", pad(300)[:128], small, 431},
		{"default head at cap", pad(16384), RequestLimits{}, 0},
		{"default head one past cap", pad(16385), RequestLimits{}, 431},
		{"fields at cap", head(fields(4)...), small, 0},
		{"fields one past cap", head(fields(5)...), small, 431},
		{"default fields at cap", head(fields(64)...), RequestLimits{}, 0},
		{"default fields one past cap", head(fields(65)...), RequestLimits{}, 431},
		{"hard fields cap", head(fields(HardMaxHeaders)...), RequestLimits{MaxHeaders: 1000}, 0},
		{"hard fields cap one past", head(fields(HardMaxHeaders + 1)...), RequestLimits{MaxHeaders: 1000}, 431},
	}
}

func allParseCases() []parseCase {
	return append(append([]parseCase(nil), parseCases...), capCases()...)
}

// Every case gives its status, and the same result whole and byte by byte.
func TestParseRequestRules(t *testing.T) {
	for _, tc := range allParseCases() {
		t.Run(tc.name, func(t *testing.T) {
			input := []byte(tc.input)
			n, r, err := parseWhole(input, tc.lim)
			if got := statusOf(err); got != tc.status {
				t.Fatalf("status %d (%v), want %d", got, err, tc.status)
			}
			if err == nil && n != len(input) {
				t.Errorf("n = %d, want %d", n, len(input))
			}
			whole := describe(n, r, err)
			cuts := make([]int, len(input))
			for i := range cuts {
				cuts[i] = i
			}
			if split := describe(parseGrowing(t, input, tc.lim, cuts)); split != whole {
				t.Errorf("byte by byte:\n%s\nwhole:\n%s", split, whole)
			}
			if tc.input != string(input) {
				t.Error("Parse modified its buffer")
			}
		})
	}
}

func TestParseRequestFields(t *testing.T) {
	n, r, err := parseWhole([]byte(noVNCRequest), RequestLimits{})
	if err != nil || n != len(noVNCRequest) {
		t.Fatalf("n=%d err=%v", n, err)
	}
	want := map[string]string{
		"method": "GET", "target": "/websockify?token=0b2c8e3f-1c1e-4a55-9a39-2f6f0e4c1d7a", "proto": "HTTP/1.1",
		"host": "console.example.com:6080", "origin": "https://console.example.com:6080",
		"key": "x3JJHMbDL1EzLkh9GBhXDw==", "version": "13", "upgrade": "websocket", "connection": "Upgrade",
		"path": "/websockify", "query": "token=0b2c8e3f-1c1e-4a55-9a39-2f6f0e4c1d7a",
	}
	got := map[string][]byte{
		"method": r.Method, "target": r.Target, "proto": r.Proto, "host": r.Host, "origin": r.Origin,
		"key": r.Key, "version": r.Version, "upgrade": r.Upgrade, "connection": r.Connection,
		"path": r.Path(), "query": r.Query(),
	}
	for k, v := range want {
		if string(got[k]) != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if !r.HasOrigin || len(r.Headers) != 14 || string(r.Headers[4].Name) != "User-Agent" {
		t.Errorf("HasOrigin %v, %d headers, 5th %q", r.HasOrigin, len(r.Headers), r.Headers[4].Name)
	}
}

func TestPathQueryHost(t *testing.T) {
	for _, tc := range []struct{ target, host, path, query string }{
		{"/", "h", "/", "nil"},
		{"/?token=x", "h", "/", "token=x"},
		{"/a/b?c?d", "h", "/a/b", "c?d"},
		{"/websockify?", "h", "/websockify", ""},
		{"http://H:6080/p?q", "H:6080", "/p", "q"}, // RFC 9112 §3.2.2: the target's authority wins
		{"ws://[::1]/", "[::1]", "/", "nil"},
	} {
		n, r, err := parseWhole([]byte(head("GET "+tc.target+" HTTP/1.1", "Host: h")), RequestLimits{})
		if err != nil {
			t.Fatalf("%s: n=%d err=%v", tc.target, n, err)
		}
		q := "nil"
		if r.Query() != nil {
			q = string(r.Query())
		}
		if string(r.Host) != tc.host || string(r.Path()) != tc.path || q != tc.query {
			t.Errorf("%s: host %q path %q query %s", tc.target, r.Host, r.Path(), q)
		}
	}
}

func TestValuesAndOWS(t *testing.T) {
	in := head("GET / HTTP/1.1", "Host: \t h \t", "Cookie: a=1", "X: y", "cookie:b=2 ", "Origin:")
	_, r, err := parseWhole([]byte(in), RequestLimits{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	r.Values("COOKIE", func(v []byte) { got = append(got, string(v)) })
	if strings.Join(got, "|") != "a=1|b=2" || string(r.Host) != "h" {
		t.Errorf("cookies %q host %q", got, r.Host)
	}
	if !r.HasOrigin || r.Origin == nil || len(r.Origin) != 0 {
		t.Errorf("empty Origin: HasOrigin %v Origin %v", r.HasOrigin, r.Origin)
	}
}

// Bytes after the blank line (pipelined frames) are not part of the head and
// are left alone.
func TestPipelinedBytesUntouched(t *testing.T) {
	frame := []byte{0x82, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}
	input := append([]byte(rfcHandshake), frame...)
	orig := bytes.Clone(input)
	for _, cuts := range [][]int{nil, {len(rfcHandshake) - 1, len(rfcHandshake) + 3}} {
		n, r, err := parseGrowing(t, input, RequestLimits{}, cuts)
		if err != nil || n != len(rfcHandshake) {
			t.Fatalf("cuts %v: n=%d err=%v", cuts, n, err)
		}
		if !bytes.Equal(input, orig) || string(r.Key) != "dGhlIHNhbXBsZSBub25jZQ==" {
			t.Errorf("cuts %v: buffer changed or fields wrong", cuts)
		}
	}
}

// Refusals are sticky, a success is repeated, and Reset starts afresh.
func TestParserStickyAndReset(t *testing.T) {
	var p RequestParser
	var r Request
	bad := []byte(head("GET / HTTP/1.0", "Host: h"))
	if _, err := p.Parse(bad, RequestLimits{}, &r); statusOf(err) != 400 {
		t.Fatalf("err %v", err)
	}
	if _, err := p.Parse([]byte(rfcHandshake), RequestLimits{}, &r); statusOf(err) != 400 {
		t.Fatalf("refusal not sticky: %v", err)
	}
	p.Reset()
	for range 2 {
		if n, err := p.Parse([]byte(rfcHandshake), RequestLimits{}, &r); err != nil || n != len(rfcHandshake) {
			t.Fatalf("n=%d err=%v", n, err)
		}
	}
	if _, err := p.Parse([]byte("GET"), RequestLimits{}, &r); statusOf(err) != 500 {
		t.Errorf("shrunk buffer: %v", err)
	}
}

// Reasons are fixed phrases: no byte of the request reaches the logs.
func TestReasonHasNoRequestBytes(t *testing.T) {
	for _, in := range []string{
		head("GET /?token=SECRET HTTP/1.0", "Host: h"),
		head("GET /?token=SECRET HTTP/1.1", "Host: SECRET!@"),
		head("GET / HTTP/1.1", "Host: h", "Cookie: token=SECRET", "Cookie SECRET"),
	} {
		_, _, err := parseWhole([]byte(in), RequestLimits{})
		if err == nil || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("error %v", err)
		}
	}
}
