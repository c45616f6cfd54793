package web

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

func site(t *testing.T) *Site {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"vnc_lite.html":    "<html><style>body{margin:0}</style><script type=\"module\">import RFB from './core/rfb.js';</script><script src=\"x.js\"></script></html>",
		"core/rfb.js":      "export default class RFB {}",
		"app/styles.css":   "body{}",
		"app/images/a.svg": "<svg/>",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	secret := filepath.Join(filepath.Dir(dir), "secret.txt")
	_ = os.WriteFile(secret, []byte("outside"), 0o644)
	s, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLookup(t *testing.T) {
	s := site(t)
	tests := []struct {
		method, path string
		err          error
		ctype        string
	}{
		{"GET", "/vnc_lite.html", nil, "text/html; charset=utf-8"},
		{"HEAD", "/vnc_lite.html", nil, "text/html; charset=utf-8"},
		{"GET", "/core/rfb.js", nil, "text/javascript; charset=utf-8"},
		{"GET", "/core%2Frfb.js", nil, "text/javascript; charset=utf-8"},
		{"GET", "/app/styles.css", nil, "text/css; charset=utf-8"},
		{"GET", "/app/images/a.svg", nil, "image/svg+xml"},
		{"POST", "/vnc_lite.html", ErrMethod, ""},
		{"PUT", "/vnc_lite.html", ErrMethod, ""},
		{"OPTIONS", "/vnc_lite.html", ErrMethod, ""},
		{"GET", "/", ErrNotFound, ""},
		{"GET", "/core/", ErrNotFound, ""},
		{"GET", "/core", ErrNotFound, ""},
		{"GET", "/missing.html", ErrNotFound, ""},
		{"GET", "/../secret.txt", ErrBadPath, ""},
		{"GET", "/core/../../secret.txt", ErrBadPath, ""},
		{"GET", "/%2e%2e/secret.txt", ErrBadPath, ""},
		{"GET", "/%2E%2E%2Fsecret.txt", ErrBadPath, ""},
		{"GET", "/core/%2e/rfb.js", ErrBadPath, ""},
		{"GET", "/..%5csecret.txt", ErrBadPath, ""},
		{"GET", "/core\\rfb.js", ErrBadPath, ""},
		{"GET", "/core/rfb.js%00", ErrBadPath, ""},
		{"GET", "/%zz", ErrBadPath, ""},
		// CVE-2021-3654: Nova redirected these to //example.com/...
		{"GET", "//example.com/%2F..", ErrBadPath, ""},
		{"GET", "///example.com/%2F..", ErrBadPath, ""},
		{"GET", "/\\example.com/%2F..", ErrBadPath, ""},
	}
	for _, tc := range tests {
		head, body, err := s.Lookup([]byte(tc.method), []byte(tc.path))
		if !errors.Is(err, tc.err) {
			t.Errorf("%s %s: %v, want %v", tc.method, tc.path, err, tc.err)
			continue
		}
		if strings.Contains(strings.ToLower(string(head)), "location:") {
			t.Errorf("%s %s: a Location header", tc.method, tc.path)
		}
		if err != nil {
			continue
		}
		h := string(head)
		for _, want := range []string{"HTTP/1.1 200 OK\r\n", "Content-Type: " + tc.ctype + "\r\n", "X-Content-Type-Options: nosniff\r\n"} {
			if !strings.Contains(h, want) {
				t.Errorf("%s %s: head lacks %q:\n%s", tc.method, tc.path, want, h)
			}
		}
		if (tc.method == "HEAD") != (body == nil) {
			t.Errorf("%s %s: body %d bytes", tc.method, tc.path, len(body))
		}
	}
}

// HTML pages get a CSP allowing exactly their inline scripts and styles.
func TestCSP(t *testing.T) {
	s := site(t)
	head, _, err := s.Lookup([]byte("GET"), []byte("/vnc_lite.html"))
	if err != nil {
		t.Fatal(err)
	}
	h := string(head)
	sum := sha256.Sum256([]byte("import RFB from './core/rfb.js';"))
	want := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	for _, part := range []string{"Content-Security-Policy: default-src 'none'", "script-src 'self' " + want, "frame-ancestors 'none'", "object-src 'none'", "connect-src 'self'"} {
		if !strings.Contains(h, part) {
			t.Fatalf("CSP lacks %q:\n%s", part, h)
		}
	}
	if strings.Contains(h, "unsafe-inline") || strings.Contains(h, "unsafe-eval") {
		t.Fatalf("CSP allows unsafe sources:\n%s", h)
	}
}

func TestLoadLimits(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Fatal("a missing directory loaded")
	}
	f := filepath.Join(t.TempDir(), "file")
	_ = os.WriteFile(f, nil, 0o644)
	if _, err := Load(f); err == nil {
		t.Fatal("a file loaded as a site")
	}
}

// With Debian's noVNC installed (scripts/deps.sh does), the real tree loads
// and its pages come with a CSP.
func TestDebianNoVNC(t *testing.T) {
	const dir = "/usr/share/novnc"
	testutil.NeedPath(t, dir, "noVNC")
	s, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/vnc_lite.html", "/vnc.html", "/core/rfb.js", "/app/ui.js"} {
		if _, _, err := s.Lookup([]byte("GET"), []byte(p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"/a/b.js", "/%2e%2e/x", "//example.com/%2F..", "/a//b", "/a/./b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		name, err := cleanPath([]byte(p))
		if err != nil {
			return
		}
		for _, seg := range strings.Split(name, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("%q cleaned to %q", p, name)
			}
		}
		if strings.ContainsAny(name, "\\\x00") || strings.HasPrefix(name, "/") {
			t.Fatalf("%q cleaned to %q", p, name)
		}
	})
}
