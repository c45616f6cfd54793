//go:build linux

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

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/wsframe"
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
	testutil.WaitFor(t, "the pid file", func() bool { return p.readPID() == p.cmd.Process.Pid })
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
	if !testutil.Eventually(exitBound, func() bool { return !processAlive(pid) }) {
		t.Errorf("pid %d still there %s after SIGTERM; killed", pid, exitBound)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// processAlive reports a process that exists and is not a zombie.
func processAlive(pid int) bool {
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

func classifyConnErr(err error) connResult {
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

// upSession is an upgraded connection for the upgrade tests: no t.Fatal, so
// that it can run on any goroutine and every failure is counted.
type upSession struct {
	c *wsClient
}

// openUpSession dials addr, upgrades with token and checks one echo.
func openUpSession(t *testing.T, addr, token string) (*upSession, connResult, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, classifyConnErr(err), err
	}
	_ = conn.SetDeadline(time.Now().Add(exitBound))
	if _, err := io.WriteString(conn, req{token: token}.request(addr)); err != nil {
		conn.Close()
		return nil, classifyConnErr(err), err
	}
	c := &wsClient{t: t, conn: conn, br: bufio.NewReader(conn),
		parser: wsframe.NewParser(wsframe.Config{Client: true, MaxFrameSize: 1 << 20, MaxMessageSize: 1 << 20})}
	if c.resp, err = http.ReadResponse(c.br, nil); err != nil {
		conn.Close()
		return nil, classifyConnErr(err), err
	}
	if c.resp.StatusCode != 101 {
		conn.Close()
		return nil, resStatus, fmt.Errorf("status %d", c.resp.StatusCode)
	}
	s := &upSession{c: c}
	if err := s.echo("hello " + token); err != nil {
		conn.Close()
		return nil, resEcho, err
	}
	return s, resOK, nil
}

// echo sends msg and reads it back.
func (s *upSession) echo(msg string) error {
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
func (s *upSession) finish() (ws.StatusCode, error) {
	if _, err := s.c.conn.Write(maskedFrame(true, ws.OpClose, wsframe.CloseFrame(1000)[2:])); err != nil {
		return 0, err
	}
	return s.closed()
}

// closed reads until the proxy's close frame and returns its code.
func (s *upSession) closed() (ws.StatusCode, error) {
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

// upStream opens, checks and finishes sessions one after another on
// upgradeStreamers goroutines until stop is closed or upgradeStreamMax
// connections were made, counting outcomes.
type upStream struct {
	counts [resultKinds]atomic.Int64
	made   atomic.Int64
	first  sync.Map // connResult → the first error of that kind
	stop   chan struct{}
	wg     sync.WaitGroup
}

func startUpStream(t *testing.T, addr, token string) *upStream {
	st := &upStream{stop: make(chan struct{})}
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
				s, out, err := openUpSession(t, addr, token)
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

func (st *upStream) ok() int64 { return st.counts[resOK].Load() }

// end stops the stream and fails the test for any connection that did not
// end in a working session.
func (st *upStream) end(t *testing.T) {
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

// upgradeAdmin talks to the admin API on a unix socket.
type upgradeAdmin struct {
	client *http.Client
	secret string
}

func upgradeAdminClient(t *testing.T, sock, secretPath string) *upgradeAdmin {
	t.Helper()
	var secret []byte
	testutil.WaitFor(t, "the admin secret", func() bool {
		var err error
		secret, err = os.ReadFile(secretPath)
		return err == nil && len(secret) > 0
	})
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &upgradeAdmin{client: &http.Client{Transport: tr, Timeout: 5 * time.Second}, secret: strings.TrimSpace(string(secret))}
}

// mint asks for a token toward port, retrying while the API is not up (a
// new process serves it once its store is open).
func (a *upgradeAdmin) mint(t *testing.T, port int) string {
	t.Helper()
	body := fmt.Sprintf(`{"console_type":"novnc","host":"127.0.0.1","port":%d,"instance_uuid":"6f5b8a3c-1e2d-4c5b-9a8f-0123456789ab"}`, port)
	var token string
	testutil.WaitFor(t, "a token from the admin API", func() bool {
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
