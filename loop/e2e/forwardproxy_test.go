//go:build linux

package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/loop"
	"github.com/consoleproxy/consoleproxy/relay"
)

// runPeer starts a real forward proxy (installed by scripts/deps.sh) with a
// config written to a temporary directory, and waits for addr to listen.
func runPeer(t *testing.T, name, addr, conf string, args func(path string) []string) {
	t.Helper()
	bin := testutil.NeedBinary(t, name, "/usr/sbin")
	path := filepath.Join(t.TempDir(), name+".conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args(path)...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	testutil.WaitFor(t, name, func() bool {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("%s exited: %v\n%s", name, err, out)
		default:
		}
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// startTinyproxy runs Debian's tinyproxy on loopback allowing CONNECT only to
// the given ports; extra is more configuration. It returns its address.
func startTinyproxy(t *testing.T, extra string, ports ...int) string {
	t.Helper()
	addr := testutil.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	var conf strings.Builder
	fmt.Fprintf(&conf, "Port %s\nListen 127.0.0.1\nTimeout 30\nMaxClients 50\nAllow 127.0.0.1\nLogLevel Critical\n%s", port, extra)
	for _, p := range ports {
		fmt.Fprintf(&conf, "ConnectPort %d\n", p)
	}
	runPeer(t, "tinyproxy", addr, conf.String(), func(path string) []string { return []string{"-d", "-c", path} })
	return addr
}

// startSquid runs Debian's squid on loopback, in the foreground, allowing
// CONNECT only to the given ports. It returns its address.
func startSquid(t *testing.T, ports ...int) string {
	t.Helper()
	addr := testutil.FreeAddr(t)
	var allowed strings.Builder
	for _, p := range ports {
		fmt.Fprintf(&allowed, " %d", p)
	}
	conf := fmt.Sprintf(`http_port %s
pid_filename none
cache_log /dev/null
access_log none
cache deny all
cache_mem 8 MB
pinger_enable off
shutdown_lifetime 0 seconds
acl console_ports port%s
acl CONNECT method CONNECT
http_access deny CONNECT !console_ports
http_access allow localhost
http_access deny all
`, addr, allowed.String())
	runPeer(t, "squid", addr, conf, func(path string) []string { return []string{"-N", "-f", path} })
	return addr
}

// throughForwardProxy runs the cases every real forward proxy must pass with
// --compute-proxy: a session works; a port the proxy denies is a 502
// (connect_refused) and that host is never reached; an internal_access_path
// CONNECT is chained after the proxy's and its first console bytes arrive
// first.
func throughForwardProxy(t *testing.T, start func(ports ...int) string) {
	allowed := startBackend(t, echo)
	requests := make(chan string, 4)
	pathHost := startBackend(t, connectHost("HTTP/1.1 200 OK\r\n\r\nhello", requests))
	denied := startBackend(t, echo)
	fp, err := relay.ParseForwardProxy("http://"+start(allowed.port(), pathHost.port()), "")
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, func(cfg *loop.Config) { cfg.Dial.Proxy = fp })

	c := open(t, p.addr, req{token: p.mint(allowed.port(), nil)})
	c.send(ws.OpBinary, []byte("via the proxy"))
	if got := string(c.readData(13)); got != "via the proxy" {
		t.Fatalf("echo %q", got)
	}

	if r := dial(t, p.addr, req{token: p.mint(denied.port(), nil)}); r.resp.StatusCode != 502 {
		t.Fatalf("a port the proxy denies: %d, want 502", r.resp.StatusCode)
	}
	if denied.accepts.Load() != 0 {
		t.Fatal("the denied host was reached")
	}
	if !strings.Contains(metricsText(p), `consoleproxy_sessions_total{result="connect_refused"} 1`) {
		t.Fatal("the proxy's refusal is not counted as connect_refused")
	}
	if !logLine(p.logs.String(), "forward proxy: CONNECT answered with a non-2xx status: 403") {
		t.Fatalf("the log lacks the proxy's status:\n%s", p.logs.String())
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

func TestComputeProxyTinyproxy(t *testing.T) {
	throughForwardProxy(t, func(ports ...int) string { return startTinyproxy(t, "", ports...) })
}

func TestComputeProxySquid(t *testing.T) {
	throughForwardProxy(t, func(ports ...int) string { return startSquid(t, ports...) })
}

// The real binary with --compute-proxy and --compute-proxy-auth-file, through
// tinyproxy requiring Basic authentication: with the right credentials the
// session works, with wrong ones tinyproxy's refusal is a 502 (connect_refused).
func TestComputeProxyAuthBinary(t *testing.T) {
	host := startBackend(t, echo)
	fwd := startTinyproxy(t, "BasicAuth console s3cretpw\n", host.port())
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good"), filepath.Join(dir, "bad")
	_ = os.WriteFile(good, []byte("console:s3cretpw\n"), 0o600)
	_ = os.WriteFile(bad, []byte("console:b4dpass\n"), 0o600)

	p := startBinary(t, []string{tokenLine("tok-auth", host.port())}, "--compute-proxy", "http://"+fwd, "--compute-proxy-auth-file", good)
	c := open(t, p.addr, req{token: "tok-auth"})
	c.send(ws.OpBinary, []byte("authorized"))
	if got := string(c.readData(10)); got != "authorized" {
		t.Fatalf("echo %q", got)
	}

	p = startBinary(t, []string{tokenLine("tok-auth", host.port())}, "--compute-proxy", "http://"+fwd, "--compute-proxy-auth-file", bad)
	if r := dial(t, p.addr, req{token: "tok-auth"}); r.resp.StatusCode != 502 {
		t.Fatalf("wrong proxy credentials: %d, want 502", r.resp.StatusCode)
	}
	// tinyproxy 1.11 answers a CONNECT with bad credentials 401, not 407.
	testutil.WaitFor(t, "the refusal's log line", func() bool {
		return logLine(p.stderr.String(), `"result":"connect_refused"`, "forward proxy: CONNECT answered with a non-2xx status: 40")
	})
	if strings.Contains(p.stderr.String(), "s3cret") || strings.Contains(p.stderr.String(), "b4dpass") {
		t.Fatal("proxy credentials in the log")
	}
}

// fakeForwardProxy records the request head of each CONNECT and refuses it.
func fakeForwardProxy(t *testing.T) (*backend, chan string) {
	heads := make(chan string, 8)
	return startBackend(t, func(_ *backend, c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		line, _ := br.ReadString('\n')
		heads <- line
		_, _ = c.Write([]byte("HTTP/1.1 403 Forbidden\r\n\r\n"))
	}), heads
}

// The proxy resolves the compute host itself and CONNECTs to the address
// (authority form, IPv6 in brackets), so --allowed-targets still holds: a
// host outside it is refused before the forward proxy is contacted.
func TestComputeProxyTargets(t *testing.T) {
	fake, heads := fakeForwardProxy(t)
	fp, err := relay.ParseForwardProxy(fmt.Sprintf("http://127.0.0.1:%d", fake.port()), "")
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, func(cfg *loop.Config) {
		cfg.Dial.Proxy = fp
		cfg.Dial.Allowed = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	})
	for _, tc := range []struct{ host, want string }{
		{"localhost", "CONNECT 127.0.0.1:5900 HTTP/1.1\r\n"},
		{"::1", "CONNECT [::1]:5900 HTTP/1.1\r\n"},
	} {
		r := dial(t, p.addr, req{token: p.mint(5900, func(r *record) { r.Host = tc.host })})
		if got := <-heads; r.resp.StatusCode != 502 || got != tc.want {
			t.Errorf("%s: %d %q, want 502 and %q", tc.host, r.resp.StatusCode, got, tc.want)
		}
	}
	before := fake.accepts.Load()
	r := dial(t, p.addr, req{token: p.mint(5900, func(r *record) { r.Host = "10.1.2.3" })})
	if r.resp.StatusCode != 502 || fake.accepts.Load() != before {
		t.Fatalf("outside --allowed-targets: %d, proxy contacted %v", r.resp.StatusCode, fake.accepts.Load() != before)
	}
	if !strings.Contains(metricsText(p), `consoleproxy_sessions_total{result="target_refused"} 1`) {
		t.Fatal("not counted as target_refused")
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
