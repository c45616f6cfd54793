//go:build linux

package relay

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// RFC 9112 §3.2.1 origin-form = absolute-path [ "?" query ], with the
// characters of RFC 3986 §3.3 (pchar) and §3.4 (query), pct-encoded per §2.1.
func TestValidAccessPath(t *testing.T) {
	tests := []struct {
		path string
		ok   bool
		why  string
	}{
		{"/", true, "the shortest absolute-path"},
		{"/websockify", true, ""},
		{"/console?token=abc&x=/y?z", true, "query may hold '/' and '?' (§3.4)"},
		{"/a%20b%2F%zZ", false, "'%' needs two hex digits (§2.1)"},
		{"/a%20b%2F", true, "pct-encoded, passed through"},
		{"/~user/;p=1:@!$&'()*+,=-._", true, "unreserved, sub-delims, ':' and '@' (§3.3)"},
		{"/" + strings.Repeat("a", MaxAccessPath-1), true, "exactly MaxAccessPath bytes"},
		{"/" + strings.Repeat("a", MaxAccessPath), false, "over MaxAccessPath"},
		{"", false, "empty"},
		{"console", false, "not absolute"},
		{"*", false, "asterisk-form is for OPTIONS only"},
		{"http://host/x", false, "absolute-form"},
		{"//host/x", true, "an empty first segment is still a path (§3.3); no authority in origin-form"},
		{"/a b", false, "SP would end the request target"},
		{"/a\r\nHost: evil", false, "CR LF would inject a header"},
		{"/a\nX", false, "bare LF"},
		{"/a\rX", false, "bare CR"},
		{"/a\tb", false, "HTAB"},
		{"/a\x00", false, "NUL"},
		{"/a\x7f", false, "DEL"},
		{"/é", false, "non-ASCII"},
		{"/a#frag", false, "a fragment is never sent (RFC 9112 §3.2)"},
		{"/%", false, "truncated escape"},
		{"/%4", false, "truncated escape"},
		{"/a\"b", false, "'\"' is not a pchar"},
		{"/a<b>", false, "'<' '>' are not pchars"},
		{"/a[b]", false, "gen-delims '[' ']' are not pchars"},
		{"/a\\b", false, "backslash"},
	}
	for _, tc := range tests {
		if got := ValidAccessPath(tc.path); got != tc.ok {
			t.Errorf("%q (%s): got %v", tc.path, tc.why, got)
		}
	}
}

// The request is exactly the request line, Host (RFC 9110 §7.2: host and
// port; an IPv6 literal in brackets, RFC 3986 §3.2.2) and the blank line.
func TestAppendConnect(t *testing.T) {
	tests := []struct {
		target, host string
		port         int
		want         string
	}{
		{"/console?x=1", "10.0.0.5", 5900, "CONNECT /console?x=1 HTTP/1.1\r\nHost: 10.0.0.5:5900\r\n\r\n"},
		{"/c", "2001:db8::5", 443, "CONNECT /c HTTP/1.1\r\nHost: [2001:db8::5]:443\r\n\r\n"},
		{"/c", "::ffff:10.0.0.5", 1, "CONNECT /c HTTP/1.1\r\nHost: [::ffff:10.0.0.5]:1\r\n\r\n"},
		{"/c%2Fd", "compute-7.cell_1.example.org", 65535, "CONNECT /c%2Fd HTTP/1.1\r\nHost: compute-7.cell_1.example.org:65535\r\n\r\n"},
	}
	for _, tc := range tests {
		got, err := AppendConnect([]byte("x"), tc.target, tc.host, tc.port)
		if err != nil || string(got) != "x"+tc.want {
			t.Errorf("%q %q %d: %q %v", tc.target, tc.host, tc.port, got, err)
		}
	}
}

// Nothing is appended for a target or host that could inject bytes.
func TestAppendConnectRefuses(t *testing.T) {
	tests := []struct {
		target, host string
		port         int
		err          error
	}{
		{"/x HTTP/1.1\r\nHost: evil\r\n\r\nGET /", "10.0.0.5", 5900, ErrBadAccessPath},
		{"/a b", "10.0.0.5", 5900, ErrBadAccessPath},
		{"/é", "10.0.0.5", 5900, ErrBadAccessPath},
		{"/c", "10.0.0.5\r\nX-Evil: 1", 5900, ErrBadHost},
		{"/c", "fe80::1%eth0\r\nX-Evil: 1", 5900, ErrBadHost},
		{"/c", "fe80::1%eth0", 5900, ErrBadHost},
		{"/c", "host name", 5900, ErrBadHost},
		{"/c", "", 5900, ErrBadHost},
		{"/c", "h\x00", 5900, ErrBadHost},
		{"/c", strings.Repeat("a", maxHostName+1), 5900, ErrBadHost},
		{"/c", "10.0.0.5", 0, ErrBadHost},
		{"/c", "10.0.0.5", 65536, ErrBadHost},
	}
	for _, tc := range tests {
		got, err := AppendConnect([]byte("x"), tc.target, tc.host, tc.port)
		if !errors.Is(err, tc.err) || string(got) != "x" {
			t.Errorf("%q %q %d: %q %v, want %v and nothing appended", tc.target, tc.host, tc.port, got, err, tc.err)
		}
	}
}

// RFC 9112 §3.2.3 authority-form; RFC 9110 §11.7.1 Proxy-Authorization.
func TestAppendProxyConnect(t *testing.T) {
	tests := []struct {
		auth   string
		target netip.AddrPort
		want   string
	}{
		{"", netip.MustParseAddrPort("10.0.0.5:5900"), "CONNECT 10.0.0.5:5900 HTTP/1.1\r\nHost: 10.0.0.5:5900\r\n\r\n"},
		{"", netip.MustParseAddrPort("[2001:db8::5]:5901"), "CONNECT [2001:db8::5]:5901 HTTP/1.1\r\nHost: [2001:db8::5]:5901\r\n\r\n"},
		{"", netip.AddrPortFrom(netip.MustParseAddr("fe80::1%a\r\nX: y"), 1), "CONNECT [fe80::1]:1 HTTP/1.1\r\nHost: [fe80::1]:1\r\n\r\n"},
		{"Basic dTpw", netip.MustParseAddrPort("10.0.0.5:5900"),
			"CONNECT 10.0.0.5:5900 HTTP/1.1\r\nHost: 10.0.0.5:5900\r\nProxy-Authorization: Basic dTpw\r\n\r\n"},
	}
	for _, tc := range tests {
		p := &ForwardProxy{Addr: "127.0.0.1:3128", Auth: tc.auth}
		if got := string(p.AppendProxyConnect(nil, tc.target)); got != tc.want {
			t.Errorf("%v: %q", tc.target, got)
		}
	}
}
