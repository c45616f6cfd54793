//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/redis/go-redis/v9"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/internal/testutil/redistest"
)

// adminClient calls an admin API on a loopback port with its secret.
type adminClient struct {
	base, secret string
}

func (c adminClient) do(t *testing.T, method, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// startApp runs the proxy in process with args (plus a free --listen, no
// metrics listener) and returns it with its log.
func startApp(t *testing.T, args ...string) (*app, *testutil.LogBuffer) {
	t.Helper()
	args = append([]string{"--listen", testutil.FreeAddr(t), "--metrics-listen", ""}, args...)
	o, explicit, err := parseFlags(args, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	logs := &testutil.LogBuffer{}
	a, err := start(o, explicit, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.stop(context.Background()) })
	return a, logs
}

// echoHost is a compute host that echoes every byte until the test ends.
func echoHost(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

type sessionEntry struct {
	ID                string `json:"id"`
	InstanceUUID      string `json:"instance_uuid"`
	ConsoleType       string `json:"console_type"`
	Peer              string `json:"peer"`
	Host              string `json:"host"`
	Port              int    `json:"port"`
	Started           string `json:"started"`
	BytesClientToHost int64  `json:"bytes_client_to_host"`
	BytesHostToClient int64  `json:"bytes_host_to_client"`
}

func (c adminClient) sessions(t *testing.T) ([]sessionEntry, string) {
	t.Helper()
	code, body := c.do(t, "GET", "/v1/sessions", "")
	var out []sessionEntry
	if err := json.Unmarshal(body, &out); code != http.StatusOK || err != nil {
		t.Fatalf("GET /v1/sessions: %d %s %v", code, body, err)
	}
	return out, string(body)
}

// TestAdminConsoleFlow: mint through the admin API, open the console by
// the url it answers (noVNC's path= form on --public-url's default, the
// proxy's own listener), see the session in GET /v1/sessions with byte
// counters that move while it lives and never the token or its hash, then
// DELETE it: the client gets close 1008, the session leaves the list and a
// second DELETE is 404.
func TestAdminConsoleFlow(t *testing.T) {
	dir, admin := t.TempDir(), testutil.FreeAddr(t)
	a, logs := startApp(t, "--token-store", "embedded:"+dir, "--admin-listen", admin)
	secret, err := os.ReadFile(filepath.Join(dir, "admin.secret"))
	if err != nil {
		t.Fatal(err)
	}
	c := adminClient{base: "http://" + admin, secret: strings.TrimSpace(string(secret))}
	port := echoHost(t)
	code, body := c.do(t, "POST", "/v1/tokens", `{"host":"127.0.0.1","port":`+strconv.Itoa(port)+
		`,"instance_uuid":"6f5b8a3c-1e2d-4c5b-9a8f-0123456789ab","ttl_seconds":300}`)
	var ans struct {
		Token     string `json:"token"`
		TokenHash string `json:"token_hash"`
		URL       string `json:"url"`
	}
	if err := json.Unmarshal(body, &ans); code != http.StatusCreated || err != nil || len(ans.Token) != 43 || len(ans.TokenHash) != 64 {
		t.Fatalf("mint: %d %s", code, body)
	}
	u, err := url.Parse(ans.URL)
	if err != nil || u.Host != a.srv.Addr().String() || u.Path != "/vnc_lite.html" || u.Query().Get("path") != "?token="+ans.Token {
		t.Fatalf("url %q, want http://%s/vnc_lite.html?path=%%3Ftoken%%3D…", ans.URL, a.srv.Addr())
	}
	// noVNC opens ws://<page's host>/<path>.
	conn, _, _, err := ws.Dial(context.Background(), "ws://"+u.Host+"/"+u.Query().Get("path"))
	if err != nil {
		t.Fatalf("open the console by the url: %v", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second)) // a bound on a hang, not a timing check
	echo := func(msg string) {
		t.Helper()
		if err := wsutil.WriteClientBinary(conn, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		var got []byte
		for len(got) < len(msg) {
			b, err := wsutil.ReadServerBinary(conn)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, b...)
		}
		if string(got) != msg {
			t.Fatalf("echo %q, want %q", got, msg)
		}
	}
	echo("hello")
	// A frame's bytes are counted once written (its callback): poll.
	counted := func(n int64) bool {
		l, _ := c.sessions(t)
		return len(l) == 1 && l[0].BytesClientToHost == n && l[0].BytesHostToClient == n
	}
	testutil.WaitFor(t, "5 bytes counted each way", func() bool { return counted(5) })
	list, raw := c.sessions(t)
	s := list[0]
	started, err := time.Parse(time.RFC3339Nano, s.Started)
	if s.InstanceUUID != "6f5b8a3c-1e2d-4c5b-9a8f-0123456789ab" || s.ConsoleType != "novnc" || s.Host != "127.0.0.1" ||
		s.Port != port || s.Peer != "127.0.0.1" || err != nil || time.Since(started) < 0 ||
		s.BytesClientToHost != 5 || s.BytesHostToClient != 5 {
		t.Fatalf("session %s", raw)
	}
	if strings.Contains(raw, ans.Token) || strings.Contains(raw, ans.TokenHash) {
		t.Fatalf("GET /v1/sessions shows the token or its hash: %s", raw)
	}
	echo("more bytes")
	testutil.WaitFor(t, "the counters to move to 15", func() bool { return counted(15) })
	if list, raw = c.sessions(t); list[0].ID != s.ID {
		t.Fatalf("another session: %s", raw)
	}
	if code, body := c.do(t, "DELETE", "/v1/sessions/"+s.ID, ""); code != http.StatusNoContent {
		t.Fatalf("DELETE session: %d %s", code, body)
	}
	if code := closeCodeOf(t, conn); code != ws.StatusPolicyViolation {
		t.Fatalf("close code %d, want 1008", code)
	}
	testutil.WaitFor(t, "the session to leave the list", func() bool { l, _ := c.sessions(t); return len(l) == 0 })
	if code, _ := c.do(t, "DELETE", "/v1/sessions/"+s.ID, ""); code != http.StatusNotFound {
		t.Errorf("second DELETE: %d, want 404", code)
	}
	var m bytes.Buffer
	a.srv.WriteMetrics(&m)
	if !strings.Contains(m.String(), `consoleproxy_session_ends_total{reason="ended_by_admin"} 1`) {
		t.Errorf("not counted as ended_by_admin")
	}
	if !strings.Contains(logs.String(), `"end":"ended_by_admin"`) {
		t.Errorf("no session end line with end=ended_by_admin:\n%s", logs)
	}
	for _, secret := range []string{ans.Token, ans.TokenHash, c.secret} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log holds a secret")
		}
	}
}

// closeCodeOf reads frames until the server's close frame and returns its
// code.
func closeCodeOf(t *testing.T, conn net.Conn) ws.StatusCode {
	t.Helper()
	for {
		h, err := ws.ReadHeader(conn)
		if err != nil {
			t.Fatalf("no close frame: %v", err)
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(conn, payload); err != nil {
			t.Fatal(err)
		}
		if h.OpCode == ws.OpClose {
			code, _ := ws.ParseCloseFrameData(payload)
			return code
		}
	}
}

// TestAdminTokenFileRefused: an --admin-token-file that group or others can
// read stops the start with an error naming the flag (which run logs
// before its non-zero exit: TestBinaryAdminTokenFileRefused in loop/e2e),
// and nothing listens on --listen.
func TestAdminTokenFileRefused(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "secret")
	if err := os.WriteFile(file, []byte("a-long-enough-secret-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660} {
		if err := os.Chmod(file, mode); err != nil {
			t.Fatal(err)
		}
		listen := testutil.FreeAddr(t)
		o, explicit, err := parseFlags([]string{"--listen", listen, "--metrics-listen", "", "--token-store", "embedded:" + dir,
			"--admin-listen", testutil.FreeAddr(t), "--admin-token-file", file}, func(string) string { return "" }, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		a, err := start(o, explicit, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err == nil {
			_ = a.stop(context.Background())
			t.Fatalf("mode %04o: started", mode)
		}
		if !strings.Contains(err.Error(), "--admin-token-file") || !strings.Contains(err.Error(), "chmod 600") ||
			strings.Contains(err.Error(), "a-long-enough-secret-value") {
			t.Errorf("mode %04o: %v", mode, err)
		}
		if c, err := net.Dial("tcp", listen); err == nil {
			c.Close()
			t.Errorf("mode %04o: something listens on --listen", mode)
		}
	}
}

// TestAdminPathsResolved: relative --token-store embedded:DIR,
// --admin-token-file and unix:--admin-listen are resolved once, against
// the directory the proxy starts in, and logged absolute; a missing token
// file is created 0600 and is the API's secret.
func TestAdminPathsResolved(t *testing.T) {
	root := t.TempDir()
	t.Chdir(root)
	if err := os.Mkdir("conf", 0o700); err != nil {
		t.Fatal(err)
	}
	_, logs := startApp(t, "--token-store", "embedded:state", "--admin-token-file", "conf/admin-token",
		"--admin-listen", "unix:run/admin.sock")
	var store, adm struct {
		Dir, Listen string
		File        string `json:"admin_token_file"`
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		switch {
		case strings.Contains(line, `"msg":"token store: embedded"`):
			_ = json.Unmarshal([]byte(line), &store)
		case strings.Contains(line, `"msg":"admin API listening"`):
			_ = json.Unmarshal([]byte(line), &adm)
		}
	}
	if store.Dir != filepath.Join(root, "state") || adm.File != filepath.Join(root, "conf", "admin-token") ||
		adm.Listen != "unix:"+filepath.Join(root, "run", "admin.sock") {
		t.Fatalf("logged store %+v, admin %+v:\n%s", store, adm, logs)
	}
	fi, err := os.Stat(adm.File)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file %v %v", fi.Mode(), err)
	}
	secret, _ := os.ReadFile(adm.File)
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", filepath.Join(root, "run", "admin.sock"))
	}}}
	req, _ := http.NewRequest("GET", "http://admin/v1/sessions", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(secret)))
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	hc.CloseIdleConnections()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v1/sessions with the created secret: %d", resp.StatusCode)
	}
}

// TestAdminReadOnlyStore: with a file: token store the admin API serves
// sessions but answers a mint or a revoke with 409.
func TestAdminReadOnlyStore(t *testing.T) {
	dir, admin := t.TempDir(), testutil.FreeAddr(t)
	file := filepath.Join(dir, "tokens.jsonl")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	secretFile := filepath.Join(dir, "admin.secret")
	startApp(t, "--token-store", "file:"+file, "--admin-listen", admin, "--admin-token-file", secretFile)
	secret, err := os.ReadFile(secretFile)
	if err != nil {
		t.Fatal(err)
	}
	c := adminClient{base: "http://" + admin, secret: strings.TrimSpace(string(secret))}
	if code, body := c.do(t, "POST", "/v1/tokens", `{"host":"127.0.0.1","port":5900,"instance_uuid":"6f5b8a3c-1e2d-4c5b-9a8f-0123456789ab"}`); code != http.StatusConflict {
		t.Errorf("mint: %d %s, want 409", code, body)
	}
	if code, body := c.do(t, "DELETE", "/v1/tokens/"+strings.Repeat("0", 64), ""); code != http.StatusConflict {
		t.Errorf("revoke: %d %s, want 409", code, body)
	}
	if list, raw := c.sessions(t); len(list) != 0 {
		t.Errorf("sessions: %s", raw)
	}
}

func TestDefaultPublicURL(t *testing.T) {
	host, _ := os.Hostname()
	bound := netip.MustParseAddrPort("127.0.0.1:6080")
	for _, tc := range []struct {
		consoleType, listen string
		tls                 bool
		want                string
	}{
		{"novnc", "127.0.0.1:6080", false, "http://127.0.0.1:6080/vnc_lite.html"},
		{"novnc", "127.0.0.1:0", true, "https://127.0.0.1:6080/vnc_lite.html"},
		{"novnc", "console.example.com:6080", false, "http://console.example.com:6080/vnc_lite.html"},
		{"novnc", "[::1]:6080", false, "http://[::1]:6080/vnc_lite.html"},
		{"novnc", "0.0.0.0:6080", false, "http://" + net.JoinHostPort(host, "6080") + "/vnc_lite.html"},
		{"novnc", ":6080", false, "http://" + net.JoinHostPort(host, "6080") + "/vnc_lite.html"},
		{"spice-html5", "127.0.0.1:6080", false, "http://127.0.0.1:6080/spice_auto.html"},
		{"serial", "127.0.0.1:6080", true, "wss://127.0.0.1:6080/"},
	} {
		if got := defaultPublicURL(tc.consoleType, bound, tc.listen, tc.tls); got != tc.want {
			t.Errorf("%s %s tls=%v: %q, want %q", tc.consoleType, tc.listen, tc.tls, got, tc.want)
		}
	}
}

// TestAdminRedisStore: with --token-store redis://… the admin API mints
// into Redis (consoleproxy:token:<hash>) and the console opens by the
// answered url; a revoke deletes the key, ends the live session with 1008
// and the token opens nothing more.
func TestAdminRedisStore(t *testing.T) {
	srv, err := redistest.Start("")
	testutil.Need(t, err) // skips when redis-server is not installed
	t.Cleanup(func() { _ = srv.Close() })
	dir, admin := t.TempDir(), testutil.FreeAddr(t)
	secretFile := filepath.Join(dir, "admin.secret")
	startApp(t, "--token-store", srv.URL(0), "--admin-listen", admin, "--admin-token-file", secretFile)
	c, tokenHash, target := mintEcho(t, admin, secretFile)
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr(), DisableIdentity: true})
	defer rc.Close()
	if n, err := rc.Exists(context.Background(), "consoleproxy:token:"+tokenHash).Result(); err != nil || n != 1 {
		t.Fatalf("the record is not in Redis: %d %v", n, err)
	}
	conn, _, _, err := ws.Dial(context.Background(), target)
	if err != nil {
		t.Fatalf("open the console by the url: %v", err)
	}
	defer conn.Close()
	if code, body := c.do(t, "DELETE", "/v1/tokens/"+tokenHash, ""); code != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", code, body)
	}
	// The live session ends with 1008 (the admin DELETE reaches loop's Revoke).
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second)) // a bound, not a timing assertion
	var closed wsutil.ClosedError
	for {
		if _, err := wsutil.ReadServerBinary(conn); err != nil {
			if !errors.As(err, &closed) || closed.Code != ws.StatusPolicyViolation {
				t.Fatalf("the live session of a revoked token: %v, want close 1008", err)
			}
			break
		}
	}
	testutil.WaitFor(t, "the first session to end", func() bool { l, _ := c.sessions(t); return len(l) == 0 })
	if _, _, _, err := ws.Dial(context.Background(), target); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("a revoked token: %v, want 403", err)
	}
}

// mintEcho reads the admin secret from secretFile and mints, through the
// admin API at admin, a token for a fresh echo host. It returns the admin
// client, the token's hash and the ws:// address of its console (from the
// answered url).
func mintEcho(t *testing.T, admin, secretFile string) (c adminClient, tokenHash, target string) {
	t.Helper()
	secret, err := os.ReadFile(secretFile)
	if err != nil {
		t.Fatal(err)
	}
	c = adminClient{base: "http://" + admin, secret: strings.TrimSpace(string(secret))}
	code, body := c.do(t, "POST", "/v1/tokens", `{"host":"127.0.0.1","port":`+strconv.Itoa(echoHost(t))+
		`,"instance_uuid":"6f5b8a3c-1e2d-4c5b-9a8f-0123456789ab"}`)
	var ans struct {
		TokenHash string `json:"token_hash"`
		URL       string `json:"url"`
	}
	if err := json.Unmarshal(body, &ans); code != http.StatusCreated || err != nil {
		t.Fatalf("mint: %d %s", code, body)
	}
	u, _ := url.Parse(ans.URL)
	return c, ans.TokenHash, "ws://" + u.Host + "/" + u.Query().Get("path")
}

// TestAdminRevokeEndsSessions: DELETE /v1/tokens/{token_hash} ends the
// token's live session with close 1008 (the reuse guard's revocation,
// loop.Server.Revoke) and the token opens nothing more (403).
func TestAdminRevokeEndsSessions(t *testing.T) {
	dir, admin := t.TempDir(), testutil.FreeAddr(t)
	startApp(t, "--token-store", "embedded:"+dir, "--admin-listen", admin)
	c, tokenHash, target := mintEcho(t, admin, filepath.Join(dir, "admin.secret"))
	conn, _, _, err := ws.Dial(context.Background(), target)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second)) // a bound on a hang, not a timing check
	if code, body := c.do(t, "DELETE", "/v1/tokens/"+tokenHash, ""); code != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", code, body)
	}
	if code := closeCodeOf(t, conn); code != ws.StatusPolicyViolation {
		t.Fatalf("close code %d, want 1008", code)
	}
	if _, _, _, err := ws.Dial(context.Background(), target); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("a revoked token: %v, want 403", err)
	}
}

// TestPublicURLFlag: a --public-url the admin API could not use stops the
// start in config, before any listener is bound, naming the flag.
func TestPublicURLFlag(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct{ url, err string }{
		{"https://console.example.com/vnc_lite.html", ""}, {"vnc_lite.html", "--public-url"},
		{"ftp://console.example.com/", "--public-url"}, {"https://console.example.com/#x", "--public-url"},
	} {
		o, _, err := parseFlags([]string{"--public-url", tc.url}, func(string) string { return "" }, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		_, err = config(o, log)
		if (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: %v, want %q", tc.url, err, tc.err)
		}
	}
}

// The admin API's start-up line never prints a query from --public-url.
func TestLogURLHidesQuery(t *testing.T) {
	for in, want := range map[string]string{
		"https://console.example.com/vnc_lite.html":            "https://console.example.com/vnc_lite.html",
		"https://console.example.com/vnc_lite.html?secret=abc": "https://console.example.com/vnc_lite.html?…",
		"http://[::1]:6080/?token=abc&x=1":                     "http://[::1]:6080/?…",
	} {
		if got := logURL(in); got != want {
			t.Errorf("logURL(%q) = %q, want %q", in, got, want)
		}
	}
}
