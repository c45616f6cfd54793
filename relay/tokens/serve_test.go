package tokens

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

func TestListenAdminLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:8080", "example.com:8080", "10.0.0.1:0", "127.0.0.1", "unix:"} {
		if ln, err := listenAdmin(addr); err == nil {
			ln.Close()
			t.Errorf("%q accepted", addr)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "localhost:0", "127.1.2.3:0", "[::1]:0", "[::ffff:127.0.0.1]:0"} {
		ln, err := listenAdmin(addr)
		if err != nil {
			if strings.Contains(addr, "::1") && !strings.Contains(err.Error(), "loopback") {
				t.Logf("%s: %v (no IPv6 here)", addr, err)
				continue
			}
			t.Errorf("%q: %v", addr, err)
			continue
		}
		if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
			t.Errorf("%q listens on %v", addr, ip)
		}
		ln.Close()
	}
}

// unixClient is an HTTP client that always dials the socket at path.
func unixClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}}
}

// serveUnix runs ServeAdmin on a Unix socket at path until the returned
// stop function is called; stop returns ServeAdmin's result.
func serveUnix(t *testing.T, path string, h http.Handler) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log, _ := newLog()
	go func() { done <- ServeAdmin(ctx, "unix:"+path, h, log) }()
	c := unixClient(path)
	testutil.CheckFor(t, "the admin socket", func() error {
		select {
		case err := <-done:
			done <- err
			return nil
		default:
		}
		resp, err := c.Get("http://admin/v1/tokens")
		if err == nil {
			resp.Body.Close()
		}
		return err
	})
	c.CloseIdleConnections()
	return func() error { cancel(); return <-done }
}

func TestServeAdminUnix(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "admin.sock")
	e := openEmbedded(t, dir, newClock(), -1)
	stop := serveUnix(t, path, e.AdminHandler([]byte(testSecret), nil))
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %v, %v", fi.Mode(), err)
	}
	c := unixClient(path)
	req, _ := http.NewRequest("POST", "http://admin/v1/tokens", strings.NewReader(mintBody))
	req.Header.Set("Authorization", "Bearer "+testSecret)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("mint over the socket: %d %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	c.CloseIdleConnections()
	if err := stop(); err != nil {
		t.Errorf("ServeAdmin returned %v", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind: %v", err)
	}
}

func TestServeAdminStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // leaves a socket nobody listens on
	stop := serveUnix(t, path, http.NotFoundHandler())
	if err := stop(); err != nil {
		t.Errorf("ServeAdmin over a stale socket: %v", err)
	}
}

func TestServeAdminRefusesOccupiedPath(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "live.sock")
	ln, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	regular := filepath.Join(dir, "file")
	if err := os.WriteFile(regular, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{live: "another process", regular: "not a socket"} {
		err := ServeAdmin(context.Background(), "unix:"+path, http.NotFoundHandler(), nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", filepath.Base(path), err, want)
		}
	}
	if data, err := os.ReadFile(regular); err != nil || string(data) != "keep me" {
		t.Errorf("the regular file was touched: %q, %v", data, err)
	}
	if _, err := os.Lstat(live); err != nil {
		t.Errorf("the live socket was removed: %v", err)
	}
}

func TestServeAdminRefusesNonLoopback(t *testing.T) {
	err := ServeAdmin(context.Background(), "0.0.0.0:0", http.NotFoundHandler(), nil)
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("0.0.0.0: %v", err)
	}
}
