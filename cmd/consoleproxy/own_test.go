//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/relay/tokens"
)

// tcpConnsOnPort counts the TCP sockets of this machine connected (or
// connecting) to port, the remote end (/proc/net/tcp and tcp6): a
// connection made to port shows there, ESTABLISHED or closing or in
// TIME_WAIT, for a minute after it closed. (The local end is not looked
// at: an earlier connection may have used the same number as its
// ephemeral port.)
func tcpConnsOnPort(t *testing.T, port int) int {
	t.Helper()
	n := 0
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)            // sl local_address rem_address st …
			if len(fields) < 4 || fields[3] == "0A" { // 0A: LISTEN
				continue
			}
			_, hexPort, _ := strings.Cut(fields[2], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 16); err == nil && int(p) == port {
				n++
			}
		}
	}
	return n
}

// upgradeStatus sends a WebSocket upgrade with token to addr and returns
// the answer's status.
func upgradeStatus(t *testing.T, addr, token string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(c, "GET /?token=%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", token, addr)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode
}

// TestOwnListenersRefused: with --allowed-targets empty, the proxy still
// never turns on itself. The admin API refuses (400, naming the fields) to
// mint a token to its metrics port, its WebSocket port or its own port; a
// token record that points at the metrics port anyway (written to the
// store directly) gets 502 target_refused and no connection reaches that
// port; a real compute host is minted and reached as before.
func TestOwnListenersRefused(t *testing.T) {
	dir := t.TempDir()
	listen, metrics, admin := testutil.FreePort(t), testutil.FreePort(t), testutil.FreePort(t)
	host := listenHost(t)
	o, explicit, err := parseFlags([]string{"--listen", "127.0.0.1:" + strconv.Itoa(listen),
		"--metrics-listen", "127.0.0.1:" + strconv.Itoa(metrics), "--admin-listen", "127.0.0.1:" + strconv.Itoa(admin),
		"--token-store", "embedded:" + dir}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	a, err := start(o, explicit, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.stop(context.Background()) })
	secret, err := os.ReadFile(filepath.Join(dir, "admin.secret"))
	if err != nil {
		t.Fatal(err)
	}
	mint := func(host string, port int) (int, string) {
		body := fmt.Sprintf(`{"console_type":"novnc","host":%q,"port":%d,"instance_uuid":"6f5b8a3c-1e2d-4c5b-9a8f-0123456789ab"}`, host, port)
		var resp *http.Response
		testutil.CheckFor(t, "the admin API", func() (err error) { // it may still be starting
			req, _ := http.NewRequest("POST", "http://127.0.0.1:"+strconv.Itoa(admin)+"/v1/tokens", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(secret)))
			resp, err = http.DefaultClient.Do(req)
			return err
		})
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		host string
		port int
	}{{"127.0.0.1", metrics}, {"localhost", metrics}, {"::ffff:127.0.0.1", metrics}, {"0.0.0.0", metrics},
		{"127.0.0.1", listen}, {"127.0.0.1", admin}} {
		if code, body := mint(tc.host, tc.port); code != http.StatusBadRequest || !strings.Contains(body, "host and port") {
			if code == http.StatusCreated {
				body = "(a token)"
			}
			t.Errorf("mint to %s:%d: %d %q, want 400 naming host and port", tc.host, tc.port, code, body)
		}
	}
	if code, body := mint("127.0.0.1", host.port()); code != http.StatusCreated {
		t.Fatalf("mint to a compute host: %d %s", code, body)
	}
	// A record the admin API would refuse, as another writer of the store
	// could leave it.
	e := a.store.(*tokens.Embedded)
	token, _, err := e.Mint(context.Background(), tokens.MintRequest{ConsoleType: "novnc", Host: "127.0.0.1", Port: metrics,
		InstanceUUID: "6f5b8a3c-1e2d-4c5b-9a8f-0123456789ab"})
	if err != nil {
		t.Fatal(err)
	}
	if n := tcpConnsOnPort(t, metrics); n != 0 {
		t.Fatalf("%d connections on the metrics port before the test's", n)
	}
	if code := upgradeStatus(t, "127.0.0.1:"+strconv.Itoa(listen), token); code != http.StatusBadGateway {
		t.Errorf("a token to the metrics port: %d, want 502", code)
	}
	if n := tcpConnsOnPort(t, metrics); n != 0 {
		t.Errorf("the proxy made %d connections to its own metrics port", n)
	}
	token, _, err = e.Mint(context.Background(), tokens.MintRequest{ConsoleType: "novnc", Host: "127.0.0.1", Port: host.port(),
		InstanceUUID: "6f5b8a3c-1e2d-4c5b-9a8f-0123456789ab"})
	if err != nil {
		t.Fatal(err)
	}
	if code := upgradeStatus(t, "127.0.0.1:"+strconv.Itoa(listen), token); code != http.StatusSwitchingProtocols {
		t.Errorf("a token to a compute host: %d, want 101", code)
	}
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(metrics) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	m, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(m), `consoleproxy_sessions_total{result="target_refused"} 1`) {
		t.Errorf("not counted as target_refused:\n%s", m)
	}
}

// computeHost is a compute host that accepts connections and holds them
// until the test ends.
type computeHost struct{ ln net.Listener }

func listenHost(t *testing.T) *computeHost {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return &computeHost{ln: ln}
}

func (h *computeHost) port() int { return h.ln.Addr().(*net.TCPAddr).Port }

// TestAdminListenStartupError: an --admin-listen the proxy may not use (not
// loopback) stops the start, before any listener serves.
func TestAdminListenStartupError(t *testing.T) {
	o, explicit, err := parseFlags([]string{"--listen", "127.0.0.1:" + strconv.Itoa(testutil.FreePort(t)), "--metrics-listen", "",
		"--token-store", "embedded:" + t.TempDir(), "--admin-listen", "192.0.2.1:9000"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	a, err := start(o, explicit, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		_ = a.stop(context.Background())
		t.Fatal("started with a non-loopback --admin-listen")
	}
	if !strings.Contains(err.Error(), "admin listen") {
		t.Fatalf("error %q does not name the admin listener", err)
	}
}
