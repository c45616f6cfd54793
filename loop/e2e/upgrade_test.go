package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/wsframe"
)

// The binary upgrade (SIGUSR2, CONTRACT.md "Signals") with the real binary:
// the process starts the binary at its own path, so each test runs a copy
// in a directory of its own and can put something else at that path.
//
// Bounds: upgradeSessions established sessions, upgradeStreamMax new
// connections at most over the whole test, upgradeStreamers of them at a
// time; every wait bounded by exitBound.
const (
	upgradeSessions  = 300
	upgradeStreamMax = 20000
	upgradeStreamers = 2
	upgradeDrain     = 3 * time.Second
)

// upgradeProc is the first process of an upgrade test. Its standard error is
// a file, not a pipe: the new process inherits it and outlives the old one,
// and a pipe would hold the old one's Wait until the new one exits.
type upgradeProc struct {
	cmd               *exec.Cmd
	addr, metrics     string
	bin, pidFile, log string
	done              chan error
}

// startUpgradable copies the binary into a directory of its own (or takes
// CONSOLEPROXY_UPGRADE_TEST_BINARY, to run these tests against another
// build) and starts it from there with a token file holding lines.
func startUpgradable(t *testing.T, lines []string, extra ...string) *upgradeProc {
	t.Helper()
	dir := t.TempDir()
	tokensPath := filepath.Join(dir, "tokens.jsonl")
	if err := os.WriteFile(tokensPath, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return startUpgradableIn(t, dir, append([]string{"--token-store", "file:" + tokensPath}, extra...)...)
}

// startUpgradableIn is startUpgradable in dir with args for the store.
func startUpgradableIn(t *testing.T, dir string, extra ...string) *upgradeProc {
	t.Helper()
	src := os.Getenv("CONSOLEPROXY_UPGRADE_TEST_BINARY")
	if src == "" {
		src = consoleproxyBinary(t)
	}
	p := &upgradeProc{addr: testutil.FreeAddr(t), metrics: testutil.FreeAddr(t), bin: filepath.Join(dir, "consoleproxy"),
		pidFile: filepath.Join(dir, "consoleproxy.pid"), log: filepath.Join(dir, "stderr.log"), done: make(chan error, 1)}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	p.cmd = exec.Command(p.bin, append([]string{"--listen", p.addr, "--metrics-listen", p.metrics,
		"--token-reuse", "shared", "--log-format", "json", "--pid-file", p.pidFile}, extra...)...)
	p.cmd.Dir = dir
	p.cmd.Stderr = logf
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if pid := p.readPID(); pid != 0 && pid != p.cmd.Process.Pid {
			stopPID(t, pid)
		}
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("stderr of both processes:\n%s", p.stderr())
		}
	})
	waitFor(t, "the pid file", func() bool { return p.readPID() == p.cmd.Process.Pid })
	return p
}

func (p *upgradeProc) stderr() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// readPID is the PID in --pid-file, 0 if none.
func (p *upgradeProc) readPID() int {
	b, err := os.ReadFile(p.pidFile)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// stopPID ends a process this test did not start (the new process is the
// old one's child, reparented when it exits): SIGTERM, then SIGKILL if it
// is still there after exitBound.
func stopPID(t *testing.T, pid int) {
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(exitBound)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if alive(pid) {
		t.Errorf("pid %d still there %s after SIGTERM; killed", pid, exitBound)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// alive reports a process that exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// waitExited waits up to exitBound for the first process to exit and
// returns its status.
func (p *upgradeProc) waitExited(t *testing.T) error {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(exitBound):
		t.Fatalf("the old process did not exit within %s", exitBound)
	}
	return nil
}

// connResult classifies a connection attempt that did not end in a working
// session.
type connResult int

const (
	resOK connResult = iota
	resRefused
	resReset
	resEOF      // closed before the answer
	resStatus   // an answer other than 101
	resEcho     // upgraded, but the echo did not come back
	resOther    // any other error
	resultKinds // the number of kinds
)

var resultNames = [resultKinds]string{"ok", "refused", "reset", "closed before the answer", "not 101", "no echo", "other"}

func classify(err error) connResult {
	switch {
	case err == nil:
		return resOK
	case errors.Is(err, syscall.ECONNREFUSED):
		return resRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return resReset
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return resEOF
	}
	return resOther
}

// session is an upgraded connection for the upgrade tests: no t.Fatal, so
// that it can run on any goroutine and every failure is counted.
type session struct {
	c *wsClient
}

// openSession dials addr, upgrades with token and checks one echo.
func openSession(t *testing.T, addr, token string) (*session, connResult, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, classify(err), err
	}
	_ = conn.SetDeadline(time.Now().Add(exitBound))
	if _, err := io.WriteString(conn, req{token: token}.request(addr)); err != nil {
		conn.Close()
		return nil, classify(err), err
	}
	c := &wsClient{t: t, conn: conn, br: bufio.NewReader(conn),
		parser: wsframe.NewParser(wsframe.Config{Client: true, MaxFrameSize: 1 << 20, MaxMessageSize: 1 << 20})}
	if c.resp, err = http.ReadResponse(c.br, nil); err != nil {
		conn.Close()
		return nil, classify(err), err
	}
	if c.resp.StatusCode != 101 {
		conn.Close()
		return nil, resStatus, fmt.Errorf("status %d", c.resp.StatusCode)
	}
	s := &session{c: c}
	if err := s.echo("hello " + token); err != nil {
		conn.Close()
		return nil, resEcho, err
	}
	return s, resOK, nil
}

// echo sends msg and reads it back.
func (s *session) echo(msg string) error {
	if _, err := s.c.conn.Write(maskedFrame(true, ws.OpBinary, []byte(msg))); err != nil {
		return err
	}
	var got []byte
	for len(got) < len(msg) {
		m, err := s.c.next()
		if err != nil {
			return err
		}
		if m.op == ws.OpClose {
			return fmt.Errorf("close %d instead of the echo", closeCode(m))
		}
		got = append(got, m.payload...)
	}
	if string(got) != msg {
		return fmt.Errorf("echo %q, want %q", got, msg)
	}
	return nil
}

// finish ends the session from the client side (close 1000) and returns
// the code of the proxy's answering close frame.
func (s *session) finish() (ws.StatusCode, error) {
	if _, err := s.c.conn.Write(maskedFrame(true, ws.OpClose, wsframe.CloseFrame(1000)[2:])); err != nil {
		return 0, err
	}
	return s.closed()
}

// closed reads until the proxy's close frame and returns its code.
func (s *session) closed() (ws.StatusCode, error) {
	defer s.c.conn.Close()
	for {
		m, err := s.c.next()
		if err != nil {
			return 0, err
		}
		if m.op == ws.OpClose {
			return closeCode(m), nil
		}
	}
}

// stream opens, checks and finishes sessions one after another on
// upgradeStreamers goroutines until stop is closed or upgradeStreamMax
// connections were made, counting outcomes.
type stream struct {
	counts [resultKinds]atomic.Int64
	made   atomic.Int64
	first  sync.Map // connResult → the first error of that kind
	stop   chan struct{}
	wg     sync.WaitGroup
}

func startStream(t *testing.T, addr, token string) *stream {
	st := &stream{stop: make(chan struct{})}
	for range upgradeStreamers {
		st.wg.Add(1)
		go func() {
			defer st.wg.Done()
			for {
				select {
				case <-st.stop:
					return
				default:
				}
				if st.made.Add(1) > upgradeStreamMax {
					return
				}
				s, out, err := openSession(t, addr, token)
				if err == nil {
					var code ws.StatusCode
					if code, err = s.finish(); err == nil && code != 1000 {
						err = fmt.Errorf("close %d after the client's 1000", code)
					}
					if err != nil {
						out = resOther
					}
				}
				st.counts[out].Add(1)
				if err != nil {
					st.first.LoadOrStore(out, err)
				}
			}
		}()
	}
	return st
}

func (st *stream) ok() int64 { return st.counts[resOK].Load() }

// end stops the stream and fails the test for any connection that did not
// end in a working session.
func (st *stream) end(t *testing.T) {
	t.Helper()
	close(st.stop)
	st.wg.Wait()
	var line []string
	for i := range resultKinds {
		line = append(line, fmt.Sprintf("%s %d", resultNames[i], st.counts[i].Load()))
	}
	t.Logf("new connections during the test: %s", strings.Join(line, ", "))
	for i := resRefused; i < resultKinds; i++ {
		if n := st.counts[i].Load(); n > 0 {
			err, _ := st.first.Load(i)
			t.Errorf("%d new connections %s (first: %v)", n, resultNames[i], err)
		}
	}
}

// A binary upgrade under load: upgradeSessions sessions open and a steady
// stream of new connections through the hand-over. No new connection is
// refused, reset or fails its handshake; half the sessions finish normally
// during the drain (they still relay after the hand-over), the other half
// get close 1001 at --drain-timeout; the old process exits 0 and the new
// one's PID is in --pid-file.
func TestUpgradeUnderLoad(t *testing.T) {
	b := startBackend(t, echo)
	p := startUpgradable(t, []string{tokenLine("tok-up", b.port())}, "--drain-timeout", upgradeDrain.String())
	sessions := make([]*session, 0, upgradeSessions)
	for i := range upgradeSessions {
		s, _, err := openSession(t, p.addr, "tok-up")
		if err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		sessions = append(sessions, s)
	}
	st := startStream(t, p.addr, "tok-up")
	waitFor(t, "new connections before the upgrade", func() bool { return st.ok() >= 50 })
	old := p.cmd.Process.Pid
	if err := p.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new process's PID in --pid-file", func() bool { pid := p.readPID(); return pid != 0 && pid != old })
	handedOver := st.ok()

	// The drain: half the sessions still relay and then finish normally.
	half := upgradeSessions / 2
	var finished, relayed int
	for i, s := range sessions[:half] {
		if err := s.echo(fmt.Sprintf("after the hand-over %d", i)); err != nil {
			t.Errorf("session %d: no echo after the hand-over: %v", i, err)
			continue
		}
		relayed++
		if code, err := s.finish(); err != nil || code != 1000 {
			t.Errorf("session %d: finish: close %d, %v", i, code, err)
			continue
		}
		finished++
	}
	// The other half run on until --drain-timeout, then get 1001.
	var at1001 int
	for i, s := range sessions[half:] {
		if code, err := s.closed(); err != nil || code != 1001 {
			t.Errorf("session %d: close %d, %v; want 1001 at --drain-timeout", half+i, code, err)
			continue
		}
		at1001++
	}
	if err := p.waitExited(t); err != nil {
		t.Errorf("the old process exited with %v, want 0", err)
	}
	exited := st.ok()
	waitFor(t, "new connections to the new process alone", func() bool {
		return st.ok() >= exited+50 || st.made.Load() >= upgradeStreamMax
	})
	st.end(t)
	t.Logf("sessions: %d established, %d relayed and finished normally after the hand-over (%d relayed), %d ended with 1001 at --drain-timeout",
		upgradeSessions, finished, relayed, at1001)
	t.Logf("new connections ok: %d before the new process was ready, %d until the old one exited, %d after",
		handedOver, exited-handedOver, st.ok()-exited)
	if s, _, err := openSession(t, p.addr, "tok-up"); err != nil {
		t.Fatalf("the new process does not serve: %v", err)
	} else {
		s.c.conn.Close()
	}
	if code, _ := httpGet(t, "http://"+p.metrics+"/readyz"); code != 200 {
		t.Errorf("readyz %d from the new process, want 200", code)
	}
}

// A new process that fails to start, or does not report ready within
// --upgrade-timeout, leaves the old one serving: sessions go on, new ones
// open, --pid-file is unchanged, and a later upgrade still works.
func TestUpgradeFailedLeavesOldServing(t *testing.T) {
	b := startBackend(t, echo)
	p := startUpgradable(t, []string{tokenLine("tok-fail", b.port())}, "--upgrade-timeout", "1s", "--drain-timeout", "1s")
	s, _, err := openSession(t, p.addr, "tok-fail")
	if err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(p.bin)
	if err != nil {
		t.Fatal(err)
	}
	old := p.cmd.Process.Pid
	for i, c := range []struct{ script, logged string }{
		{"#!/bin/sh\nexit 1\n", "exited"},
		{"#!/bin/sh\nexec sleep 60\n", "timed out"},
	} {
		replaceFile(t, p.bin, []byte(c.script))
		before := strings.Count(p.stderr(), "binary upgrade failed")
		if err := p.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the failed upgrade", func() bool { return strings.Count(p.stderr(), "binary upgrade failed") > before })
		if !strings.Contains(p.stderr(), c.logged) {
			t.Errorf("case %d: the log does not say %q", i, c.logged)
		}
		if err := s.echo(fmt.Sprintf("still relaying %d", i)); err != nil {
			t.Fatalf("case %d: the open session broke: %v", i, err)
		}
		n, _, err := openSession(t, p.addr, "tok-fail")
		if err != nil {
			t.Fatalf("case %d: a new session after the failed upgrade: %v", i, err)
		}
		n.c.conn.Close()
		if pid := p.readPID(); pid != old {
			t.Fatalf("case %d: --pid-file holds %d, want %d", i, pid, old)
		}
		select {
		case err := <-p.done:
			t.Fatalf("case %d: the old process exited: %v", i, err)
		default:
		}
	}
	// The binary put back, the upgrade works.
	replaceFile(t, p.bin, good)
	if err := p.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new process's PID in --pid-file", func() bool { pid := p.readPID(); return pid != 0 && pid != old })
	if code, err := s.closed(); err != nil || code != 1001 {
		t.Errorf("the old session: close %d, %v; want 1001 at --drain-timeout", code, err)
	}
	if err := p.waitExited(t); err != nil {
		t.Errorf("the old process exited with %v, want 0", err)
	}
}

// replaceFile puts content at path by renaming a new file over it (the
// running binary's file cannot be written).
func replaceFile(t *testing.T, path string, content []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, content, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// The embedded token store (bbolt: one process at a time) goes over with
// the listeners: the new process reports ready with the store still held
// by the old one, which stops accepting and then lets it go; lookups in the
// new process wait meanwhile. No new connection fails, and the admin API
// on the shared unix socket mints into the store the new process serves.
// A client of the old process still sending its upgrade request does not
// hold the store past cmd/consoleproxy's handoverStoreWait (5 s, here well
// inside --handshake-timeout): once it is let go, that client gets 503.
func TestUpgradeEmbeddedStore(t *testing.T) {
	b := startBackend(t, echo)
	dir := t.TempDir()
	sock := filepath.Join(dir, "admin.sock")
	p := startUpgradableIn(t, dir, "--token-store", "embedded:"+filepath.Join(dir, "var"),
		"--admin-listen", "unix:"+sock, "--drain-timeout", "30s", "--handshake-timeout", "60s")
	admin := adminClient(t, sock, filepath.Join(dir, "var", "admin.secret"))
	tok := admin.mint(t, b.port())
	s, _, err := openSession(t, p.addr, tok)
	if err != nil {
		t.Fatal(err)
	}
	slow := dialRaw(t, p.addr)
	request := req{token: tok}.request(p.addr)
	if _, err := io.WriteString(slow, request[:len(request)-2]); err != nil { // all but the last CRLF
		t.Fatal(err)
	}
	waitFor(t, "the slow client in its handshake", func() bool {
		_, body := httpGet(t, "http://"+p.metrics+"/metrics")
		return strings.Contains(body, "\nconsoleproxy_connections_pending 1\n")
	})
	st := startStream(t, p.addr, tok)
	waitFor(t, "new connections before the upgrade", func() bool { return st.ok() >= 50 })
	old := p.cmd.Process.Pid
	if err := p.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new process's PID in --pid-file", func() bool { pid := p.readPID(); return pid != 0 && pid != old })
	if err := s.echo("after the hand-over"); err != nil {
		t.Errorf("the old session: no echo after the hand-over: %v", err)
	}
	if code, err := s.finish(); err != nil || code != 1000 {
		t.Errorf("the old session: finish: close %d, %v", code, err)
	}
	waitFor(t, "the store let go", func() bool {
		return strings.Contains(p.stderr(), "embedded token store released to the new process")
	})
	if _, err := io.WriteString(slow, "\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(slow), nil)
	if err != nil {
		t.Fatalf("the slow client: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("the slow client: %d, want 503 (its old process let the store go)", resp.StatusCode)
	}
	if err := p.waitExited(t); err != nil { // its last session gone, before --drain-timeout
		t.Errorf("the old process exited with %v, want 0", err)
	}
	exited := st.ok()
	waitFor(t, "new connections to the new process alone", func() bool {
		return st.ok() >= exited+50 || st.made.Load() >= upgradeStreamMax
	})
	st.end(t)
	tok2 := admin.mint(t, b.port()) // by the new process, into the store it opened
	n, _, err := openSession(t, p.addr, tok2)
	if err != nil {
		t.Fatalf("a token minted after the upgrade: %v", err)
	}
	n.c.conn.Close()
}

// admin talks to the admin API on a unix socket.
type admin struct {
	client *http.Client
	secret string
}

func adminClient(t *testing.T, sock, secretPath string) *admin {
	t.Helper()
	var secret []byte
	waitFor(t, "the admin secret", func() bool {
		var err error
		secret, err = os.ReadFile(secretPath)
		return err == nil && len(secret) > 0
	})
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &admin{client: &http.Client{Transport: tr, Timeout: 5 * time.Second}, secret: strings.TrimSpace(string(secret))}
}

// mint asks for a token toward port, retrying while the API is not up (a
// new process serves it once its store is open).
func (a *admin) mint(t *testing.T, port int) string {
	t.Helper()
	body := fmt.Sprintf(`{"console_type":"novnc","host":"127.0.0.1","port":%d,"instance_uuid":"6f5b8a3c-1e2d-4c5b-9a8f-0123456789ab"}`, port)
	var token string
	waitFor(t, "a token from the admin API", func() bool {
		rq, _ := http.NewRequest("POST", "http://admin/v1/tokens", strings.NewReader(body))
		rq.Header.Set("Authorization", "Bearer "+a.secret)
		resp, err := a.client.Do(rq)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var out struct{ Token string }
		if resp.StatusCode != http.StatusCreated || json.NewDecoder(resp.Body).Decode(&out) != nil {
			return false
		}
		token = out.Token
		return token != ""
	})
	return token
}

// Under systemd (Type=notify, NotifyAccess=main) the first process sends
// READY=1 once it serves; after the upgrade the old process, still the main
// one, names the new one (MAINPID=, the PID in --pid-file) before it
// exits. The sender is checked as systemd does (SO_PASSCRED).
func TestUpgradeNotifiesSystemd(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	rc, err := ln.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	_ = rc.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1) })
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("NOTIFY_SOCKET", sock)
	b := startBackend(t, echo)
	p := startUpgradable(t, []string{tokenLine("tok-n", b.port())}, "--drain-timeout", "1s")
	read := func() (string, int) {
		buf, oob := make([]byte, 4096), make([]byte, 1024)
		_ = ln.SetReadDeadline(time.Now().Add(exitBound))
		n, oobn, _, _, err := ln.ReadMsgUnix(buf, oob)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) == 0 {
			t.Fatalf("no credentials: %v", err)
		}
		cred, err := unix.ParseUnixCredentials(&msgs[0])
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:n]), int(cred.Pid)
	}
	old := p.cmd.Process.Pid
	if got, from := read(); got != "READY=1" || from != old {
		t.Fatalf("the first process: %q from pid %d, want READY=1 from %d", got, from, old)
	}
	if err := p.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	got, from := read()
	pid := p.readPID()
	if want := fmt.Sprintf("MAINPID=%d", pid); pid == old || got != want || from != old {
		t.Fatalf("after the upgrade: %q from pid %d, want %q from %d", got, from, want, old)
	}
	if err := p.waitExited(t); err != nil {
		t.Errorf("the old process exited with %v, want 0", err)
	}
}
