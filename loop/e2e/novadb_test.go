//go:build linux

package e2e

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/internal/testutil/novadbtest"
)

// startNovaCell starts a MariaDB server for this test with one Nova cell
// database; a server that cannot start fails the test (skips it when MariaDB
// is not installed).
func startNovaCell(t *testing.T) (*novadbtest.Server, *novadbtest.Cell) {
	t.Helper()
	srv, err := novadbtest.StartMariaDB()
	if err != nil {
		testutil.Need(t, fmt.Errorf("MariaDB: %w", err))
	}
	t.Cleanup(func() { _ = srv.Close() })
	cell, err := srv.CreateCell("nova_cell1", true)
	if err != nil {
		t.Fatal(err)
	}
	return srv, cell
}

// addToken adds a live instance and a token for the console at port; edit
// changes the row.
func addToken(t *testing.T, cell *novadbtest.Cell, port int, edit func(*novadbtest.Token)) string {
	t.Helper()
	tok := novadbtest.Token{ConsoleType: "novnc", Host: "127.0.0.1", Port: port, InstanceUUID: novadbtest.NewUUID(),
		Expires: time.Now().Add(10 * time.Minute).Unix()}
	if edit != nil {
		edit(&tok)
	}
	if err := cell.AddInstance(tok.InstanceUUID); err != nil {
		t.Fatal(err)
	}
	token, err := cell.AddToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// startNovaProxy runs the real binary as nova-novncproxy runs: nothing but
// a nova.conf (listen address and database from it) and a metrics port.
func startNovaProxy(t *testing.T, cell *novadbtest.Cell) *proc {
	t.Helper()
	dir := t.TempDir()
	p := &proc{addr: testutil.FreeAddr(t), metrics: testutil.FreeAddr(t), stderr: &syncBuffer{}, done: make(chan error, 1)}
	host, port, _ := net.SplitHostPort(p.addr)
	conf := "[DEFAULT]\ndebug = true\n\n[vnc]\nnovncproxy_host = " + host + "\nnovncproxy_port = " + port +
		"\n\n[database]\nconnection = " + cell.URL() + "\n"
	path := filepath.Join(dir, "nova.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(consoleproxyBinary(t), "--nova-config", path, "--metrics-listen", p.metrics, "--log-format", "json")
	p.cmd.Dir, p.cmd.Stderr = dir, p.stderr
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

// TestNovaDatabase: the real binary with only a nova.conf, against a real
// MariaDB holding Nova's tables: a valid token gets 101 and its console; an
// expired, unknown, deleted-instance or other-type token gets 403; with the
// database stopped, 503; once it is back, 101 again, no restart.
func TestNovaDatabase(t *testing.T) {
	srv, cell := startNovaCell(t)
	b := startBackend(t, echo)
	valid := addToken(t, cell, b.port(), nil)
	later := addToken(t, cell, b.port(), nil)
	expired := addToken(t, cell, b.port(), func(tok *novadbtest.Token) { tok.Expires = time.Now().Add(-time.Second).Unix() })
	serial := addToken(t, cell, b.port(), func(tok *novadbtest.Token) { tok.ConsoleType = "serial" })
	httpsBase := "https://console.example.com:6080/vnc_lite.html"
	overTLS := addToken(t, cell, b.port(), func(tok *novadbtest.Token) { tok.AccessURLBase = &httpsBase })
	deletedUUID := novadbtest.NewUUID()
	deleted := addToken(t, cell, b.port(), func(tok *novadbtest.Token) { tok.InstanceUUID = deletedUUID })
	if err := cell.DeleteInstance(deletedUUID); err != nil {
		t.Fatal(err)
	}
	p := startNovaProxy(t, cell)

	c := open(t, p.addr, req{token: valid})
	c.send(ws.OpBinary, []byte("ping"))
	if got := string(c.readData(4)); got != "ping" {
		t.Fatalf("echo %q", got)
	}
	for name, token := range map[string]string{"expired": expired, "unknown": novadbtest.NewUUID(),
		"deleted instance": deleted, "wrong console type": serial} {
		if resp := dial(t, p.addr, req{token: token}); resp.resp.StatusCode != 403 {
			t.Errorf("%s: status %d, want 403", name, resp.resp.StatusCode)
		}
	}
	// Nova's scheme rule: a browser on http:// may not use a token whose
	// access_url_base says https://.
	if resp := dial(t, p.addr, req{token: overTLS, headers: map[string]string{"Origin": "http://" + p.addr}}); resp.resp.StatusCode != 403 {
		t.Errorf("https access_url_base from an http origin: status %d, want 403", resp.resp.StatusCode)
	}

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if resp := dial(t, p.addr, req{token: later}); resp.resp.StatusCode != 503 {
			t.Fatalf("database stopped: status %d, want 503", resp.resp.StatusCode)
		}
	}
	c.send(ws.OpBinary, []byte("still")) // a live session does not need the database
	if got := string(c.readData(5)); got != "still" {
		t.Fatalf("echo during the outage %q", got)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	c2 := open(t, p.addr, req{token: later})
	c2.send(ws.OpBinary, []byte("back"))
	if got := string(c2.readData(4)); got != "back" {
		t.Fatalf("echo after recovery %q", got)
	}

	m := metricsOf(t, p)
	for result, want := range map[string]int{"ok": 2, "auth_failed": 4, "origin_refused": 1, "store_unavailable": 3} {
		if !strings.Contains(m, `consoleproxy_sessions_total{result="`+result+`"} `+strconv.Itoa(want)) {
			t.Errorf("metrics: want %d %s:\n%s", want, result, grepLines(m, "sessions_total"))
		}
	}
	logs := p.stderr.String()
	if n := strings.Count(logs, "nova database unavailable"); n != 1 {
		t.Errorf("%d outage lines for 3 refused clients, want 1", n)
	}
	for _, secret := range []string{valid, later, hashHex(valid), novadbtest.Password, url.QueryEscape(novadbtest.Password)} {
		if strings.Contains(logs, secret) {
			t.Fatalf("a token, its hash or the database password reached the log:\n%s", logs)
		}
	}
}

// grepLines returns the lines of s containing sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
