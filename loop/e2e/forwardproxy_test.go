package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"github.com/consoleproxy/consoleproxy/loop"
	"github.com/consoleproxy/consoleproxy/relay"
)

// startTinyproxy runs Debian's tinyproxy on loopback allowing CONNECT only to
// the given ports; it returns its address.
func startTinyproxy(t *testing.T, ports ...int) string {
	t.Helper()
	bin, err := exec.LookPath("tinyproxy")
	if err != nil {
		t.Fatalf("tinyproxy not installed (scripts/deps.sh installs it): %v", err)
	}
	addr := freePort(t)
	_, port, _ := net.SplitHostPort(addr)
	var conf strings.Builder
	fmt.Fprintf(&conf, "Port %s\nListen 127.0.0.1\nTimeout 30\nMaxClients 50\nAllow 127.0.0.1\nLogLevel Critical\n", port)
	for _, p := range ports {
		fmt.Fprintf(&conf, "ConnectPort %d\n", p)
	}
	path := filepath.Join(t.TempDir(), "tinyproxy.conf")
	if err := os.WriteFile(path, []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-d", "-c", path)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitFor(t, "tinyproxy", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return addr
}

// --compute-proxy through a real forward proxy: sessions work, a CONNECT
// the proxy denies is a 502, and an internal_access_path CONNECT is chained
// after the proxy's.
func TestComputeProxyTinyproxy(t *testing.T) {
	allowed := startBackend(t, echo)
	requests := make(chan string, 4)
	pathHost := startBackend(t, connectHost("HTTP/1.1 200 OK\r\n\r\nhello", requests))
	denied := startBackend(t, echo)
	fwd := startTinyproxy(t, allowed.port(), pathHost.port())
	fp, err := relay.ParseForwardProxy("http://"+fwd, "")
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, func(cfg *loop.Config) { cfg.Dial.Proxy = fp })

	c := open(t, p.addr, req{token: p.mint(allowed.port(), nil)})
	c.send(ws.OpBinary, []byte("via tinyproxy"))
	if got := string(c.readData(13)); got != "via tinyproxy" {
		t.Fatalf("echo %q", got)
	}

	if r := dial(t, p.addr, req{token: p.mint(denied.port(), nil)}); r.resp.StatusCode != 502 {
		t.Fatalf("a port tinyproxy denies: %d, want 502", r.resp.StatusCode)
	}
	if denied.accepts.Load() != 0 {
		t.Fatal("the denied host was reached")
	}

	path := "/vm/console"
	c = open(t, p.addr, req{token: p.mint(pathHost.port(), func(r *record) { r.InternalAccessPath = &path })})
	if got := <-requests; !strings.HasPrefix(got, "CONNECT /vm/console HTTP/1.1\r\n") {
		t.Fatalf("second CONNECT %q", got)
	}
	if got := string(c.readData(5)); got != "hello" {
		t.Fatalf("first console bytes %q", got)
	}
}

func TestParseForwardProxy(t *testing.T) {
	for _, bad := range []string{"https://p:3128", "http://p", "http://u:pw@p:3128", "http://p:3128/x", "p:3128"} {
		if _, err := relay.ParseForwardProxy(bad, ""); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	auth := filepath.Join(t.TempDir(), "auth")
	_ = os.WriteFile(auth, []byte("user:secret\n"), 0o600)
	fp, err := relay.ParseForwardProxy("http://127.0.0.1:3128", auth)
	if err != nil || fp.Auth != "Basic dXNlcjpzZWNyZXQ=" {
		t.Fatalf("%+v %v", fp, err)
	}
}
