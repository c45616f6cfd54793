//go:build linux

package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/loop/web"
)

// rawGET sends one request line and headers and returns the parsed response.
func rawGET(t *testing.T, addr, method, target string) (*http.Response, string) {
	t.Helper()
	c := dialRaw(t, addr)
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: %s\r\n\r\n", method, target, addr)
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// --web serves files on the WebSocket listener: GET and HEAD only, no
// listings, nothing outside the directory, never a redirect (CVE-2021-3654),
// with nosniff and a CSP; sessions work beside it.
func TestStaticFiles(t *testing.T) {
	dir := t.TempDir()
	_ = os.MkdirAll(filepath.Join(dir, "core"), 0o755)
	_ = os.WriteFile(filepath.Join(dir, "vnc_lite.html"), []byte("<html>console</html>"), 0o644)
	_ = os.WriteFile(filepath.Join(dir, "core", "rfb.js"), []byte("export {}"), 0o644)
	_ = os.WriteFile(filepath.Join(filepath.Dir(dir), "outside.txt"), []byte("secret"), 0o644)
	site, err := web.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, nil)
	none, _ := rawGET(t, p.addr, "GET", "/vnc_lite.html")
	if none.StatusCode != 404 {
		t.Fatalf("without --web: %d", none.StatusCode)
	}
	p.srv.SetWeb(site)
	tests := []struct {
		method, target string
		status         int
		body           string
	}{
		{"GET", "/vnc_lite.html", 200, "<html>console</html>"},
		{"HEAD", "/vnc_lite.html", 200, ""},
		{"GET", "/core/rfb.js", 200, "export {}"},
		{"GET", "/vnc_lite.html?path=%3Ftoken%3Dabc", 200, "<html>console</html>"},
		{"POST", "/vnc_lite.html", 405, ""},
		{"DELETE", "/vnc_lite.html", 405, ""},
		{"GET", "/", 404, ""},
		{"GET", "/core/", 404, ""},
		{"GET", "/../outside.txt", 400, ""},
		{"GET", "/%2e%2e/outside.txt", 400, ""},
		{"GET", "/core/%2E%2E/%2E%2E/outside.txt", 400, ""},
		{"GET", "//example.com/%2F..", 400, ""},
		{"GET", "///example.com/%2F..", 400, ""},
	}
	for _, tc := range tests {
		resp, body := rawGET(t, p.addr, tc.method, tc.target)
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.target, resp.StatusCode, tc.status)
		}
		if loc := resp.Header.Get("Location"); loc != "" {
			t.Errorf("%s %s: Location %q", tc.method, tc.target, loc)
		}
		if tc.status == 200 {
			if body != tc.body || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("%s %s: body %q, nosniff %q", tc.method, tc.target, body, resp.Header.Get("X-Content-Type-Options"))
			}
			if strings.HasSuffix(strings.SplitN(tc.target, "?", 2)[0], ".html") && !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
				t.Errorf("%s: no CSP", tc.target)
			}
		}
		if strings.Contains(body, "secret") {
			t.Fatalf("%s %s: served a file outside the directory", tc.method, tc.target)
		}
	}
	b := startBackend(t, echo)
	c := open(t, p.addr, req{token: p.mint(b.port(), nil)})
	c.send(2, []byte("ok"))
	if string(c.readData(2)) != "ok" {
		t.Fatal("a session beside static files")
	}
}

// TestStaticNotCountedAsSessions: with --web, GETs of noVNC's files (and a
// missing file, a wrong method, a bad path among them) are page loads, not
// sessions: consoleproxy_sessions_total does not move and no "session
// refused" or "session end" line is logged; consoleproxy_static_requests_total
// counts them by status. A plain GET without --web is still a refused
// session (not_websocket), and a console beside the files is counted ok.
func TestStaticNotCountedAsSessions(t *testing.T) {
	dir := t.TempDir()
	_ = os.WriteFile(filepath.Join(dir, "vnc_lite.html"), []byte("<html>console</html>"), 0o644)
	site, err := web.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, nil)
	if resp, _ := rawGET(t, p.addr, "GET", "/vnc_lite.html"); resp.StatusCode != 404 {
		t.Fatalf("without --web: %d", resp.StatusCode)
	}
	testutil.WaitFor(t, "the refusal without --web", func() bool {
		return strings.Contains(metricsText(p), `consoleproxy_sessions_total{result="not_websocket"} 1`)
	})
	p.srv.SetWeb(site)
	for _, tc := range []struct {
		method, target string
		status         int
	}{{"GET", "/vnc_lite.html?path=%3Ftoken%3Dabc", 200}, {"HEAD", "/vnc_lite.html", 200}, {"GET", "/favicon.ico", 404},
		{"POST", "/vnc_lite.html", 405}, {"GET", "/../outside.txt", 400}} {
		if resp, _ := rawGET(t, p.addr, tc.method, tc.target); resp.StatusCode != tc.status {
			t.Fatalf("%s %s: %d, want %d", tc.method, tc.target, resp.StatusCode, tc.status)
		}
	}
	testutil.WaitFor(t, "the static requests counted", func() bool {
		return strings.Contains(metricsText(p), `consoleproxy_static_requests_total{status="400"} 1`)
	})
	m := metricsText(p)
	for _, want := range []string{`consoleproxy_static_requests_total{status="200"} 2`, `consoleproxy_static_requests_total{status="404"} 1`,
		`consoleproxy_static_requests_total{status="405"} 1`} {
		if !strings.Contains(m, want+"\n") {
			t.Errorf("metrics lack %s", want)
		}
	}
	for _, line := range strings.Split(m, "\n") {
		if strings.HasPrefix(line, "consoleproxy_sessions_total{") && !strings.HasSuffix(line, " 0") &&
			line != `consoleproxy_sessions_total{result="not_websocket"} 1` {
			t.Errorf("a static request counted as a session: %s", line)
		}
	}
	if n := strings.Count(p.logs.String(), `"msg":"session refused"`); n != 1 {
		t.Errorf("%d session refused lines, want 1 (the GET without --web):\n%s", n, p.logs)
	}
	if strings.Contains(p.logs.String(), `"msg":"session end"`) {
		t.Errorf("a static request logged as a session end:\n%s", p.logs)
	}
	b := startBackend(t, echo)
	open(t, p.addr, req{token: p.mint(b.port(), nil)})
	// Counted once the 101 is written, which the client may see first: polled.
	testutil.WaitFor(t, "the console beside the files counted ok", func() bool {
		return strings.Contains(metricsText(p), `consoleproxy_sessions_total{result="ok"} 1`)
	})
}
