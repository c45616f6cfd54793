package policy

import (
	"errors"
	"strings"
	"testing"
)

// docs/contract.md "Origin", case by case (RFC 6454 §6.2 serialization).
func TestOriginCheck(t *testing.T) {
	allowed, err := ParseAllowedOrigins("console.example.com, https://portal.example.com:8443, [2001:db8::1]")
	if err != nil {
		t.Fatal(err)
	}
	p := &OriginPolicy{Allowed: allowed}
	tests := []struct {
		origin string
		host   string
		secure bool
		ok     bool
	}{
		{"http://proxy.example:6080", "proxy.example:6080", false, true},
		{"HTTP://PROXY.EXAMPLE:6080", "proxy.example:6080", false, true},
		{"http://proxy.example:6080", "PROXY.example:6080", false, true},
		{"http://proxy.example", "proxy.example:80", false, true},
		{"http://proxy.example:80", "proxy.example", false, true},
		{"https://proxy.example", "proxy.example:443", true, true},
		{"https://proxy.example:443", "proxy.example", true, true},
		{"http://proxy.example:6081", "proxy.example:6080", false, false},  // port differs (Nova ignores it)
		{"https://proxy.example:6080", "proxy.example:6080", false, false}, // https over plain
		{"http://proxy.example:6080", "proxy.example:6080", true, false},   // http over TLS
		{"ws://proxy.example:6080", "proxy.example:6080", false, false},
		{"null", "proxy.example", false, false},
		{"http://proxy.example:6080/", "proxy.example:6080", false, false},
		{"http://proxy.example:6080/x", "proxy.example:6080", false, false},
		{"http://proxy.example:6080?x", "proxy.example:6080", false, false},
		{"http://proxy.example:6080#x", "proxy.example:6080", false, false},
		{"http://u@proxy.example:6080", "proxy.example:6080", false, false},
		{"http://proxy.example.:6080", "proxy.example:6080", false, false},
		{"http://proxy%2Eexample:6080", "proxy.example:6080", false, false},
		{"http://proxy.example\\:6080", "proxy.example:6080", false, false},
		{"http://proxy.example:+6080", "proxy.example:+6080", false, false},
		{"http://proxy.example:06080", "proxy.example:6080", false, false},
		{"http://proxy.example:0", "proxy.example:0", false, false},
		{"http://proxy.example:65536", "proxy.example:65536", false, false},
		{"http://proxy.example:", "proxy.example", false, false},
		{"http://", "", false, false},
		{"http:// proxy.example", "proxy.example", false, false},
		{"http://prøxy.example", "prøxy.example", false, false},
		{"", "proxy.example", false, false},
		{"http://[::1]:6080", "[::1]:6080", false, true},
		{"http://[0:0::1]:6080", "[::1]:6080", false, true},
		{"http://[::1]:6080", "[::2]:6080", false, false},
		{"http://[::1", "[::1]", false, false},
		{"http://[fe80::1%25eth0]:6080", "[fe80::1%25eth0]:6080", false, false},
		// host-name entry: any port, scheme still follows the connection
		{"http://console.example.com:9999", "proxy.example:6080", false, true},
		{"https://console.example.com", "proxy.example:6080", true, true},
		{"https://console.example.com", "proxy.example:6080", false, false},
		{"http://evil-console.example.com", "proxy.example:6080", false, false},
		{"http://console.example.com.evil.net", "proxy.example:6080", false, false},
		{"http://xconsole.example.com", "proxy.example:6080", false, false},
		{"http://example.com", "proxy.example:6080", false, false},
		// full-origin entry: exactly that scheme, host and port
		{"https://portal.example.com:8443", "proxy.example:6080", true, true},
		{"https://portal.example.com", "proxy.example:6080", true, false},
		{"http://portal.example.com:8443", "proxy.example:6080", false, false},
		{"http://[2001:db8::1]:1234", "proxy.example:6080", false, true},
	}
	for _, tc := range tests {
		err := p.Check([]byte(tc.origin), true, []byte(tc.host), tc.secure)
		if (err == nil) != tc.ok {
			t.Errorf("Check(%q, host %q, secure %v) = %v, want ok=%v", tc.origin, tc.host, tc.secure, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrOriginRefused) {
			t.Errorf("error %v is not ErrOriginRefused", err)
		}
	}
	if err := p.Check(nil, false, []byte("proxy.example"), false); err != nil {
		t.Errorf("no Origin header: %v", err)
	}
}

func TestParseAllowedOrigins(t *testing.T) {
	for _, bad := range []string{"http://a/b", "ftp://a", "a:80", "a b", "http://a:99999", "a..b", "https://"} {
		if _, err := ParseAllowedOrigins(bad); err == nil || !strings.Contains(err.Error(), "entry 1") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	got, err := ParseAllowedOrigins(" , A.Example ,")
	if err != nil || len(got) != 1 || got[0].o.host != "a.example" || !got[0].hostOnly {
		t.Errorf("got %+v, %v", got, err)
	}
}

// FuzzOriginCheck: never panics; an accepted origin, when it matched the Host
// rather than an allowed entry, names exactly that host and port.
func FuzzOriginCheck(f *testing.F) {
	for _, s := range []string{"http://a:1", "https://[::1]", "null", "http://a.b.", "HTTP://A"} {
		f.Add(s, "a:1", false)
	}
	p := &OriginPolicy{}
	f.Fuzz(func(t *testing.T, origin, host string, secure bool) {
		err := p.Check([]byte(origin), true, []byte(host), secure)
		if err != nil {
			return
		}
		o, ok := parseOrigin([]byte(origin))
		h, ok2 := parseHostHeader([]byte(host), secure)
		if !ok || !ok2 || o != h {
			t.Fatalf("accepted %q for host %q: %+v vs %+v", origin, host, o, h)
		}
		if strings.ContainsAny(origin, "/?#@%\\ \t") && strings.Count(origin, "/") != 2 {
			t.Fatalf("accepted %q with a path, query or odd bytes", origin)
		}
	})
}
