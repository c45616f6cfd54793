package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"golang.org/x/sys/unix"
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

// A binary upgrade under load: upgradeSessions sessions open and a steady
// stream of new connections through the hand-over. No new connection is
// refused, reset or fails its handshake; half the sessions finish normally
// during the drain (they still relay after the hand-over), the other half
// get close 1001 at --drain-timeout; the old process exits 0 and the new
// one's PID is in --pid-file.
func TestUpgradeUnderLoad(t *testing.T) {
	b := startBackend(t, echo)
	p := startUpgradable(t, []string{tokenLine("tok-up", b.port())}, "--drain-timeout", upgradeDrain.String())
	sessions := make([]*upSession, 0, upgradeSessions)
	for i := range upgradeSessions {
		s, _, err := openUpSession(t, p.addr, "tok-up")
		if err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		sessions = append(sessions, s)
	}
	st := startUpStream(t, p.addr, "tok-up")
	testutil.WaitFor(t, "new connections before the upgrade", func() bool { return st.ok() >= 50 })
	old := p.cmd.Process.Pid
	if err := p.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the new process's PID in --pid-file", func() bool { pid := p.readPID(); return pid != 0 && pid != old })
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
	testutil.WaitFor(t, "new connections to the new process alone", func() bool {
		return st.ok() >= exited+50 || st.made.Load() >= upgradeStreamMax
	})
	st.end(t)
	t.Logf("sessions: %d established, %d relayed and finished normally after the hand-over (%d relayed), %d ended with 1001 at --drain-timeout",
		upgradeSessions, finished, relayed, at1001)
	t.Logf("new connections ok: %d before the new process was ready, %d until the old one exited, %d after",
		handedOver, exited-handedOver, st.ok()-exited)
	if s, _, err := openUpSession(t, p.addr, "tok-up"); err != nil {
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
	s, _, err := openUpSession(t, p.addr, "tok-fail")
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
		testutil.WaitFor(t, "the failed upgrade", func() bool { return strings.Count(p.stderr(), "binary upgrade failed") > before })
		if !strings.Contains(p.stderr(), c.logged) {
			t.Errorf("case %d: the log does not say %q", i, c.logged)
		}
		if err := s.echo(fmt.Sprintf("still relaying %d", i)); err != nil {
			t.Fatalf("case %d: the open session broke: %v", i, err)
		}
		n, _, err := openUpSession(t, p.addr, "tok-fail")
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
	testutil.WaitFor(t, "the new process's PID in --pid-file", func() bool { pid := p.readPID(); return pid != 0 && pid != old })
	if code, err := s.closed(); err != nil || code != 1001 {
		t.Errorf("the old session: close %d, %v; want 1001 at --drain-timeout", code, err)
	}
	if err := p.waitExited(t); err != nil {
		t.Errorf("the old process exited with %v, want 0", err)
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
	admin := upgradeAdminClient(t, sock, filepath.Join(dir, "var", "admin.secret"))
	tok := admin.mint(t, b.port())
	s, _, err := openUpSession(t, p.addr, tok)
	if err != nil {
		t.Fatal(err)
	}
	slow := dialRaw(t, p.addr)
	request := req{token: tok}.request(p.addr)
	if _, err := io.WriteString(slow, request[:len(request)-2]); err != nil { // all but the last CRLF
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the slow client in its handshake", func() bool {
		_, body := httpGet(t, "http://"+p.metrics+"/metrics")
		return strings.Contains(body, "\nconsoleproxy_connections_pending 1\n")
	})
	st := startUpStream(t, p.addr, tok)
	testutil.WaitFor(t, "new connections before the upgrade", func() bool { return st.ok() >= 50 })
	old := p.cmd.Process.Pid
	if err := p.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the new process's PID in --pid-file", func() bool { pid := p.readPID(); return pid != 0 && pid != old })
	if err := s.echo("after the hand-over"); err != nil {
		t.Errorf("the old session: no echo after the hand-over: %v", err)
	}
	if code, err := s.finish(); err != nil || code != 1000 {
		t.Errorf("the old session: finish: close %d, %v", code, err)
	}
	testutil.WaitFor(t, "the store let go", func() bool {
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
	testutil.WaitFor(t, "new connections to the new process alone", func() bool {
		return st.ok() >= exited+50 || st.made.Load() >= upgradeStreamMax
	})
	st.end(t)
	tok2 := admin.mint(t, b.port()) // by the new process, into the store it opened
	n, _, err := openUpSession(t, p.addr, tok2)
	if err != nil {
		t.Fatalf("a token minted after the upgrade: %v", err)
	}
	n.c.conn.Close()
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

// --pid-file without an upgrade: written (atomically) once the process
// serves, removed when it stops; a second SIGUSR2 sent to the new process
// while the old one still drains is refused (logged), and the old one's
// sessions are not disturbed by it.
func TestPIDFileAndSecondUpgrade(t *testing.T) {
	b := startBackend(t, echo)
	p := startUpgradable(t, []string{tokenLine("tok-pid", b.port())}, "--drain-timeout", "30s")
	s, _, err := openUpSession(t, p.addr, "tok-pid")
	if err != nil {
		t.Fatal(err)
	}
	old := p.cmd.Process.Pid
	if err := p.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the new process's PID in --pid-file", func() bool { pid := p.readPID(); return pid != 0 && pid != old })
	next := p.readPID()
	// The old process drains (its session holds it for up to 30 s): the
	// new one refuses to upgrade again meanwhile.
	if err := syscall.Kill(next, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the refused second upgrade", func() bool { return strings.Contains(p.stderr(), "parent hasn't exited") })
	if err := s.echo("during the drain"); err != nil {
		t.Fatalf("the old session: %v", err)
	}
	if code, err := s.finish(); err != nil || code != 1000 {
		t.Fatalf("the old session: close %d, %v", code, err)
	}
	if err := p.waitExited(t); err != nil {
		t.Errorf("the old process exited with %v, want 0", err)
	}
	if pid := p.readPID(); pid != next {
		t.Fatalf("--pid-file holds %d after the old process exited, want %d", pid, next)
	}
	stopPID(t, next)
	if _, err := os.Stat(p.pidFile); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("--pid-file after SIGTERM: %v, want it removed", err)
	}
}
