//go:build linux

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/loop"
)

// A port in use is a start-up error, whoever holds it (issue 12, finding
// 12): gnet binds with SO_REUSEPORT, so without a probe a second proxy on
// the same port started and the kernel split clients between the two.
func TestListenPortInUse(t *testing.T) {
	p := startProxy(t, nil)
	if err := startSecond(t, p, p.addr); err == nil || !strings.Contains(err.Error(), p.addr) || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("a second server on %s (held by a running server): %v, want an error naming the address", p.addr, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	held := ln.Addr().String()
	if err := startSecond(t, p, held); err == nil || !strings.Contains(err.Error(), held) || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("a server on %s (held by a plain listener): %v, want an error naming the address", held, err)
	}
	// The first server still has every client.
	b := startBackend(t, echo)
	open(t, p.addr, req{token: p.mint(b.port(), nil)})
}

// startSecond starts a server on addr with p's token store; a server that
// starts is shut down again and nil returned.
func startSecond(t *testing.T, p *proxy, addr string) error {
	t.Helper()
	srv, err := loop.New(loop.Config{Listen: addr, Store: p.store, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), EventLoops: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	return nil
}

// The real binary refuses to start on a port another consoleproxy holds,
// and says which address.
func TestBinaryPortInUse(t *testing.T) {
	p := startBinary(t, nil)
	cmd := exec.Command(consoleproxyBinary(t), "--listen", p.addr, "--metrics-listen", "", "--token-store", "file:"+p.tokens)
	cmd.Dir = t.TempDir()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		done <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	var out strings.Builder
	deadline := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				err := <-done
				done <- err
				if err == nil || !strings.Contains(out.String(), p.addr) || !strings.Contains(out.String(), "in use") {
					t.Fatalf("second binary on %s: exit %v, want a failure naming the address:\n%s", p.addr, err, out.String())
				}
				return
			}
			out.WriteString(l + "\n")
			if strings.Contains(l, "consoleproxy listening") {
				t.Fatalf("a second binary started on %s, held by another:\n%s", p.addr, out.String())
			}
		case <-deadline:
			t.Fatalf("second binary on %s neither failed nor listened:\n%s", p.addr, out.String())
		}
	}
}

// The probe does not refuse a restart over the TIME_WAIT connections the
// previous run left on its port (closed by the proxy first).
func TestListenRestartOverTimeWait(t *testing.T) {
	p := startProxy(t, nil)
	port := p.srv.Addr().Port()
	if c := dial(t, p.addr, req{token: "unknown"}); c.resp.StatusCode != 403 {
		t.Fatalf("unknown token: %d", c.resp.StatusCode)
	} else {
		_, _ = io.Copy(io.Discard, c.br) // the proxy closes first
		c.conn.Close()
	}
	testutil.WaitFor(t, "a TIME_WAIT connection on the port", func() bool { return tcpState(t, fmt.Sprintf("0100007F:%04X", port), 1, "06") })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := startSecond(t, p, p.addr); err != nil {
		t.Fatalf("restart on %s: %v", p.addr, err)
	}
}

// tcpState reports whether /proc/net/tcp lists a socket whose address in
// column col (1 local, 2 remote) is addr (its hex form) in state st (02
// SYN_SENT, 06 TIME_WAIT).
func tcpState(t *testing.T, addr string, col int, st string) bool {
	t.Helper()
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		t.Skipf("no /proc/net/tcp: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) > 3 && fs[col] == addr && fs[3] == st {
			return true
		}
	}
	return false
}
