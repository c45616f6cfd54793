//go:build linux

package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// consoleproxyBinary builds the real binary once per test run.
func consoleproxyBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "consoleproxy-e2e")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "consoleproxy")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/consoleproxy/consoleproxy/cmd/consoleproxy").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// proc is the real binary running with a token file.
type proc struct {
	cmd     *exec.Cmd
	addr    string
	metrics string
	stderr  *syncBuffer
	tokens  string
	done    chan error
}

// startBinary runs consoleproxy with a token file holding lines; extra
// flags are appended.
func startBinary(t testing.TB, lines []string, extra ...string) *proc {
	t.Helper()
	return startBinaryWith(t, nil, lines, extra...)
}

// startBinaryWith is startBinary with the command run through prefix (a
// wrapper such as sh -c 'ulimit …; exec "$@"' sh).
func startBinaryWith(t testing.TB, prefix, lines []string, extra ...string) *proc {
	t.Helper()
	dir := t.TempDir()
	p := &proc{addr: testutil.FreeAddr(t), metrics: testutil.FreeAddr(t), stderr: &syncBuffer{}, tokens: filepath.Join(dir, "tokens.jsonl"), done: make(chan error, 1)}
	if err := os.WriteFile(p.tokens, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--listen", p.addr, "--metrics-listen", p.metrics, "--token-store", "file:" + p.tokens, "--log-format", "json"}, extra...)
	argv := append(append(prefix[:len(prefix):len(prefix)], consoleproxyBinary(t)), args...)
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Dir = dir
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	waitStarted(t, p)
	return p
}

// waitStarted waits until p listens (waitListening) and has logged the
// end of its start-up, "consoleproxy listening": a dial alone could reach
// whatever else holds the port when p could not bind it.
func waitStarted(t testing.TB, p *proc) {
	t.Helper()
	waitListening(t, p)
	testutil.WaitFor(t, "start-up done", func() bool { return strings.Contains(p.stderr.String(), "consoleproxy listening") })
}

// tokenLine is a file-store line for token: a console on this machine's
// port.
func tokenLine(token string, port int) string { return testutil.TokenLine(token, "127.0.0.1", port) }

func httpGet(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// SIGTERM drains: readyz turns false, each session gets 1001, the process
// exits 0.
func TestSIGTERMDrains(t *testing.T) {
	b := startBackend(t, echo)
	p := startBinary(t, []string{tokenLine("tok-a", b.port()), tokenLine("tok-b", b.port())})
	if code, _ := httpGet(t, "http://"+p.metrics+"/readyz"); code != 200 {
		t.Fatalf("readyz %d", code)
	}
	clients := []*wsClient{open(t, p.addr, req{token: "tok-a"}), open(t, p.addr, req{token: "tok-b"})}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	for _, c := range clients {
		if code, _ := c.expectClose(); code != 1001 {
			t.Fatalf("close code %d, want 1001", code)
		}
	}
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, p.stderr)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	if !strings.Contains(p.stderr.String(), `"end":"shutdown"`) {
		t.Fatalf("no shutdown session end in the log:\n%s", p.stderr)
	}
}

// Tokens, their hashes, cookies and query strings never reach the logs,
// whatever happens to the session.
func TestSecretsNotLogged(t *testing.T) {
	b := startBackend(t, echo)
	good, cookieTok := "tok-secret-good-1234", "tok-secret-cookie-5678"
	p := startBinary(t, []string{tokenLine(good, b.port()), tokenLine(cookieTok, b.port())})
	c := open(t, p.addr, req{token: good})
	c.send(ws.OpBinary, []byte("x"))
	c.readData(1)
	c.conn.Close()
	c2 := open(t, p.addr, req{target: "/websockify?x=querysecret", headers: map[string]string{"Cookie": "a=cookiesecret; token=" + cookieTok}})
	c2.conn.Close()
	dial(t, p.addr, req{token: "tok-unknown-secret-999"})
	dial(t, p.addr, req{token: good, headers: map[string]string{"Origin": "http://evil.example"}})
	testutil.WaitFor(t, "log lines", func() bool {
		l := p.stderr.String()
		return strings.Count(l, `"msg":"session end"`) >= 2 && strings.Count(l, `"msg":"session refused"`) >= 2
	})
	logs := p.stderr.String()
	for _, secret := range []string{good, cookieTok, "tok-unknown-secret-999", "cookiesecret", "querysecret", hashHex(good), hashHex(cookieTok)} {
		if strings.Contains(logs, secret) {
			t.Fatalf("log contains %q:\n%s", secret, logs)
		}
	}
	for _, want := range []string{`"instance":"0d6c1c3a-8a4b-4f5e-9d7c-3e2f1a0b9c8d"`, `"bytes_up":1`, `"bytes_down":1`, `"host":"127.0.0.1:`, `"result":"auth_failed"`, `"result":"origin_refused"`} {
		if !strings.Contains(logs, want) {
			t.Fatalf("log lacks %s:\n%s", want, logs)
		}
	}
}

func hashHex(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// The metrics endpoint serves the contract's names, and they move.
func TestMetricsEndpoint(t *testing.T) {
	b := startBackend(t, echo)
	p := startBinary(t, []string{tokenLine("tok-m", b.port())})
	c := open(t, p.addr, req{token: "tok-m"})
	c.send(ws.OpBinary, []byte("hello"))
	c.readData(5)
	dial(t, p.addr, req{token: "nope"})
	wants := []string{
		"consoleproxy_sessions_active 1", `consoleproxy_sessions_total{result="ok"} 1`,
		`consoleproxy_sessions_total{result="auth_failed"} 1`, `consoleproxy_bytes_total{direction="client_to_host"} 5`,
		`consoleproxy_bytes_total{direction="host_to_client"} 5`, "consoleproxy_handshake_duration_seconds_bucket",
		"consoleproxy_session_duration_seconds_bucket", "go_goroutines", "process_resident_memory_bytes",
	}
	var body string
	// Byte counters move when gnet reports a write done, which may be just
	// after the client has the bytes: poll.
	testutil.WaitFor(t, "metrics", func() bool {
		_, body = httpGet(t, "http://"+p.metrics+"/metrics")
		for _, want := range wants {
			if !strings.Contains(body, want) {
				return false
			}
		}
		return true
	})
	if code, _ := httpGet(t, "http://"+p.metrics+"/healthz"); code != 200 {
		t.Fatalf("healthz %d", code)
	}
}

// Flags: --help lists every contract flag; the environment form works and
// flags win; a feature not built yet is refused, not ignored.
func TestFlags(t *testing.T) {
	bin := consoleproxyBinary(t)
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("--help: %v", err)
	}
	for _, f := range []string{"listen", "metrics-listen", "token-store", "console-type", "allowed-origins", "trusted-proxies",
		"cert", "key", "ssl-only", "ssl-minimum-version", "ssl-ciphers", "ssl-client-ca", "allowed-targets", "compute-proxy",
		"connect-timeout", "nova-config", "web", "enforce-session-timeout", "token-reuse", "handshake-timeout",
		"idle-timeout", "max-sessions", "log-format"} {
		if !strings.Contains(string(out), "-"+f+" ") && !strings.Contains(string(out), "-"+f+"\n") {
			t.Errorf("--help lacks --%s", f)
		}
	}
	cmd := exec.Command(bin, "--console-type", "novnc")
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "CONSOLEPROXY_CONSOLE_TYPE=bogus", "CONSOLEPROXY_LOG_FORMAT=xml")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "log-format") {
		t.Fatalf("env CONSOLEPROXY_LOG_FORMAT=xml not applied: %v %s", err, out)
	}
	for _, args := range [][]string{{"--cert", "x.pem"}, {"--token-store", "novadb:mysql://x"}, {"--allowed-origins", "http://a/b"},
		{"--web", "/nonexistent"}, {"--compute-proxy", "ftp://127.0.0.1:3128"}, {"--token-reuse", "sometimes"},
		{"--reuse-store", "file:/x"}, {"--token-store", "redis://:pw@127.0.0.1:notaport"}} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		cmd := exec.CommandContext(ctx, bin, append(args, "--listen", testutil.FreeAddr(t), "--metrics-listen", "")...)
		cmd.Dir = t.TempDir()
		out, err := cmd.CombinedOutput()
		timedOut := ctx.Err() != nil
		cancel()
		if err == nil || timedOut {
			t.Fatalf("%v accepted: %v %s", args, err, out)
		}
	}
}

// SIGHUP re-reads the token file: a token added afterwards works, a live
// session is untouched.
func TestSIGHUPReloads(t *testing.T) {
	b := startBackend(t, echo)
	p := startBinary(t, []string{tokenLine("tok-old", b.port())})
	live := open(t, p.addr, req{token: "tok-old"})
	f, err := os.OpenFile(p.tokens, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(tokenLine("tok-new", b.port()) + "\n")
	f.Close()
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	testutil.WaitFor(t, "reload", func() bool { return strings.Contains(p.stderr.String(), `"msg":"reloaded"`) })
	open(t, p.addr, req{token: "tok-new"})
	live.send(ws.OpBinary, []byte("still here"))
	if got := string(live.readData(10)); got != "still here" {
		t.Fatalf("live session after SIGHUP: %q", got)
	}
}
