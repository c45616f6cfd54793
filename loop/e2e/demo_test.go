//go:build linux

package e2e

import (
	"bufio"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

// `make run` works: the binary with --demo on its embedded store prints a
// URL whose token opens a session to the demo RFB console.
func TestDemoRun(t *testing.T) {
	addr, token, stderr := startDemo(t)
	c := open(t, addr, req{token: token, protocol: "binary"})
	if got := string(c.readData(12)); got != "RFB 003.008\n" {
		t.Fatalf("demo console greeting %q", got)
	}
	if strings.Contains(stderr.String(), token) {
		t.Fatal("the demo token reached the log")
	}
}

// startDemo runs the binary as `make run` does (--demo, embedded store in a
// fresh directory) and returns its address, the printed token and its log.
func startDemo(t *testing.T) (addr, token string, stderr *syncBuffer) {
	t.Helper()
	addr = testutil.FreeAddr(t)
	cmd := exec.Command(consoleproxyBinary(t), "--demo", "--listen", addr, "--metrics-listen", testutil.FreeAddr(t))
	cmd.Dir = t.TempDir()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr = &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	url := regexp.MustCompile(`ws://[^/]+/\?token=([A-Za-z0-9_-]+)`)
	sc := bufio.NewScanner(out)
	deadline := time.Now().Add(20 * time.Second)
	for token == "" && sc.Scan() && time.Now().Before(deadline) {
		if m := url.FindStringSubmatch(sc.Text()); m != nil {
			token = m[1]
		}
	}
	if token == "" {
		t.Fatalf("no URL printed; stderr:\n%s", stderr)
	}
	return addr, token, stderr
}
