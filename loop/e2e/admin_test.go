//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

// TestBinaryAdminTokenFileRefused: the real binary given an
// --admin-token-file that others can read exits non-zero at start-up with
// a log line naming the flag, and never the secret.
func TestBinaryAdminTokenFileRefused(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "admin-token")
	if err := os.WriteFile(file, []byte("a-long-enough-secret-value\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(file, 0o644); err != nil { // whatever the umask
		t.Fatal(err)
	}
	cmd := exec.Command(consoleproxyBinary(t), "--listen", testutil.FreeAddr(t), "--metrics-listen", "",
		"--admin-listen", "unix:"+filepath.Join(dir, "admin.sock"), "--admin-token-file", file, "--log-format", "json")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("exit %v, want a non-zero status:\n%s", err, out)
	}
	if !strings.Contains(string(out), "--admin-token-file") || strings.Contains(string(out), "a-long-enough-secret-value") {
		t.Fatalf("log:\n%s", out)
	}
}

// TestBinaryAdminDefaults: the real binary with no token-store or admin
// flags, started in an empty directory: the embedded store, the admin
// secret (0600) and socket appear under ./var and are logged absolute; a
// mint over the socket answers a url on the listener by which a console
// opens; GET /v1/sessions shows it, DELETE ends it with 1008.
func TestBinaryAdminDefaults(t *testing.T) {
	dir := t.TempDir()
	addr := testutil.FreeAddr(t)
	stderr := &syncBuffer{}
	cmd := exec.Command(consoleproxyBinary(t), "--listen", addr, "--metrics-listen", "", "--log-format", "json")
	cmd.Dir, cmd.Stderr = dir, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	testutil.WaitFor(t, "the admin API", func() bool { return strings.Contains(stderr.String(), `"msg":"admin API listening"`) })
	for _, want := range []string{`"dir":"` + filepath.Join(dir, "var") + `"`, `"listen":"unix:` + filepath.Join(dir, "var", "admin.sock") + `"`,
		`"admin_token_file":"` + filepath.Join(dir, "var", "admin.secret") + `"`, `"public_url":"http://` + addr + `/vnc_lite.html"`} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("the log lacks %s:\n%s", want, stderr)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, "var", "admin.secret"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin.secret: %v %v", fi.Mode(), err)
	}
	call := adminAt(t, filepath.Join(dir, "var"))
	b := startBackend(t, echo)
	code, body := call("POST", "/v1/tokens", `{"host":"127.0.0.1","port":`+strconv.Itoa(b.port())+`,"instance_uuid":"0d6c1c3a-8a4b-4f5e-9d7c-3e2f1a0b9c8d"}`)
	var ans struct {
		URL string `json:"url"`
	}
	if err := json.Unmarshal(body, &ans); code != http.StatusCreated || err != nil {
		t.Fatalf("mint: %d %s", code, body)
	}
	u, err := url.Parse(ans.URL)
	if err != nil || u.Host != addr {
		t.Fatalf("url %q", ans.URL)
	}
	c := open(t, addr, req{target: "/" + u.Query().Get("path")})
	c.send(ws.OpBinary, []byte("hi"))
	c.readData(2)
	var list []struct {
		ID                string `json:"id"`
		BytesClientToHost int64  `json:"bytes_client_to_host"`
	}
	testutil.WaitFor(t, "the session listed with its bytes", func() bool {
		_, body := call("GET", "/v1/sessions", "")
		return json.Unmarshal(body, &list) == nil && len(list) == 1 && list[0].BytesClientToHost == 2
	})
	if code, body := call("DELETE", "/v1/sessions/"+list[0].ID, ""); code != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	if code, _ := c.expectClose(); code != ws.StatusPolicyViolation {
		t.Fatalf("close code %d, want 1008", code)
	}
}

// adminAt returns a caller of the admin API whose socket and secret are
// the defaults under varDir (var/admin.sock, var/admin.secret).
func adminAt(t *testing.T, varDir string) func(method, path, body string) (int, []byte) {
	t.Helper()
	secret, err := os.ReadFile(filepath.Join(varDir, "admin.secret"))
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", filepath.Join(varDir, "admin.sock"))
	}}}
	t.Cleanup(hc.CloseIdleConnections)
	return func(method, path, body string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://admin"+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(secret)))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
}

// TestBinaryAdminRevokeFleet: two binaries on one Redis token store.
// A mint on A's admin API is a token B admits too; DELETE
// /v1/tokens/{token_hash} on A ends the token's sessions on both with
// close 1008, and neither admits it again.
func TestBinaryAdminRevokeFleet(t *testing.T) {
	srv, _ := startRedis(t, "")
	spec := srv.URL(0)
	pa := startBinary(t, nil, "--token-store", spec, "--token-reuse", "shared")
	pb := startBinary(t, nil, "--token-store", spec, "--token-reuse", "shared")
	varA := filepath.Join(filepath.Dir(pa.tokens), "var")
	testutil.WaitFor(t, "A's admin API", func() bool { return strings.Contains(pa.stderr.String(), `"msg":"admin API listening"`) })
	call := adminAt(t, varA)
	b := startBackend(t, echo)
	code, body := call("POST", "/v1/tokens", `{"host":"127.0.0.1","port":`+strconv.Itoa(b.port())+`,"instance_uuid":"0d6c1c3a-8a4b-4f5e-9d7c-3e2f1a0b9c8d"}`)
	var ans struct {
		Token     string `json:"token"`
		TokenHash string `json:"token_hash"`
	}
	if err := json.Unmarshal(body, &ans); code != http.StatusCreated || err != nil {
		t.Fatalf("mint on A: %d %s", code, body)
	}
	onA, onB := open(t, pa.addr, req{token: ans.Token}), open(t, pb.addr, req{token: ans.Token})
	if code, body := call("DELETE", "/v1/tokens/"+ans.TokenHash, ""); code != http.StatusNoContent {
		t.Fatalf("revoke on A: %d %s", code, body)
	}
	for name, c := range map[string]*wsClient{"A": onA, "B": onB} {
		if code, _ := c.expectClose(); code != ws.StatusPolicyViolation {
			t.Errorf("the session on %s: close %d, want 1008", name, code)
		}
	}
	for name, p := range map[string]*proc{"A": pa, "B": pb} {
		if c := dial(t, p.addr, req{token: ans.Token}); c.resp.StatusCode != 403 {
			t.Errorf("%s admits the revoked token: %d", name, c.resp.StatusCode)
		}
	}
}
