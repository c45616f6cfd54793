package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

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
