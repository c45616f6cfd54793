package policy

import (
	"errors"
	"strings"
	"testing"
)

// Nova's verify_origin_proto: the scheme of access_url_base, with ws read as
// http and wss as https, must be the Origin's.
func TestCheckAccessURLScheme(t *testing.T) {
	tests := []struct {
		base, origin string
		ok           bool
	}{
		{"", "http", true},
		{"", "https", true},
		{"https://console.example.com:6080/vnc_lite.html", "", true},
		{"http://console.example.com:6080/vnc_lite.html", "http", true},
		{"https://console.example.com:6080/vnc_lite.html", "https", true},
		{"HTTPS://console.example.com/vnc_lite.html", "https", true},
		{"ws://console.example.com:6083/", "http", true},
		{"wss://console.example.com:6083/", "https", true},
		{"http://console.example.com:6080/vnc_lite.html", "https", false},
		{"https://console.example.com:6080/vnc_lite.html", "http", false},
		{"ws://console.example.com:6083/", "https", false},
		{"wss://console.example.com:6083/", "http", false},
		{"ftp://console.example.com/", "http", false},
		{"console.example.com:6080/vnc_lite.html", "http", false},
		{"://console.example.com", "https", false},
		{"javascript:alert(1)", "http", false},
	}
	for _, tc := range tests {
		err := CheckAccessURLScheme(tc.base, tc.origin)
		if (err == nil) != tc.ok || err != nil && !errors.Is(err, ErrOriginRefused) {
			t.Errorf("%q with origin scheme %q: %v, want ok %v", tc.base, tc.origin, err, tc.ok)
		}
		if err != nil && strings.Contains(err.Error(), "example") {
			t.Errorf("%q: the error names the URL: %v", tc.base, err)
		}
	}
}

func TestOriginScheme(t *testing.T) {
	for _, tc := range []struct {
		present, secure bool
		want            string
	}{{false, false, ""}, {false, true, ""}, {true, false, "http"}, {true, true, "https"}} {
		if got := OriginScheme(tc.present, tc.secure); got != tc.want {
			t.Errorf("present %v secure %v: %q, want %q", tc.present, tc.secure, got, tc.want)
		}
	}
}

// FuzzAccessURLScheme: whatever the record holds, an accepted pair has an
// access_url_base whose scheme stands for the Origin's.
func FuzzAccessURLScheme(f *testing.F) {
	for _, s := range []string{"https://h/x", "ws://h:6083/", "WSS://h", "ftp://h", "h:1/x", ""} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, base string, secure bool) {
		scheme := OriginScheme(true, secure)
		if CheckAccessURLScheme(base, scheme) != nil || base == "" {
			return
		}
		s, _, _ := strings.Cut(strings.ToLower(base), "://")
		if want := map[string]string{"http": "http", "ws": "http", "https": "https", "wss": "https"}[s]; want != scheme {
			t.Fatalf("%q accepted for origin scheme %q", base, scheme)
		}
	})
}
