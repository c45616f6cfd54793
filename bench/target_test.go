package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// haproxy exits when one of its binds fails, after binding the listeners
// before it (the kernel then queues connections on those): a probe that
// only connects can pass on a proxy about to exit. waitServed passes only
// once the proxy connected the probe to its console, and says so when the
// proxy exits instead; and it passes on a haproxy that serves.
func TestWaitServed(t *testing.T) {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		if bin = "/usr/sbin/haproxy"; !fileExists(bin) {
			t.Skip("haproxy is not installed (scripts/deps.sh installs it)")
		}
	}
	b, err := StartBackend(BackendConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	taken, err := net.Listen("tcp4", "127.0.0.1:0") // no SO_REUSEPORT: haproxy's bind fails
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, tc := range []struct {
		name, second string
		want         string // "" for served
	}{
		{"serves", "", ""},
		{"a bind fails", taken.Addr().String(), "exited before serving"},
	} {
		dir := t.TempDir()
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		cfg := fmt.Sprintf("defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 5s\n  timeout server 5s\n"+
			"listen echo\n  bind 127.0.0.1:%d\n  server s 127.0.0.1:%d\n", port, b.Addr(ModeEcho).Port)
		if tc.second != "" {
			cfg += fmt.Sprintf("listen taken\n  bind %s\n  server s 127.0.0.1:%d\n", tc.second, b.Addr(ModeEcho).Port)
		}
		path := filepath.Join(dir, "haproxy.cfg")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := startProc(dir, "haproxy", bin, "-db", "-f", path)
		if err != nil {
			t.Fatal(err)
		}
		err = waitServed(context.Background(), p, fmt.Sprintf("127.0.0.1:%d", port), b)
		p.stop()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
