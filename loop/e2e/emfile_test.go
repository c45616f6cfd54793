//go:build linux

package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

// Finding 11: running out of descriptors must not stop the listener. The
// real binary runs with 128 descriptors; idle connections use them up, the
// proxy sheds what waits in its backlog and backs off instead of letting
// gnet's engine exit, and once the idle connections go a real client is
// served and /readyz still says ready.
func TestOutOfDescriptorsKeepsListening(t *testing.T) {
	if _, err := exec.LookPath("prlimit"); err != nil {
		testutil.Need(t, fmt.Errorf("prlimit (util-linux): %w", testutil.ErrNotInstalled))
	}
	b := startBackend(t, echo)
	token := "emfile-token"
	p := startBinaryWith(t, []string{"prlimit", "--nofile=128:128", "--"},
		[]string{tokenLine(token, b.port())})
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	shed := regexp.MustCompile(`(?m)^consoleproxy_connections_shed_total ([0-9]+)`)
	for i := 0; i < 400; i++ {
		c, err := net.DialTimeout("tcp", p.addr, 5*time.Second)
		if err != nil {
			break
		}
		idle = append(idle, c)
	}
	// Some of those were shed: the proxy closed them. Wait until it says so.
	testutil.WaitFor(t, "the proxy out of descriptors and shedding", func() bool {
		return p.stderr.String() != "" && regexp.MustCompile(`(?i)accept(\(\))? failed`).MatchString(p.stderr.String())
	})
	for _, c := range idle {
		c.Close()
	}
	idle = nil
	// The proxy closes its ends as it notices; then descriptors are free.
	fdDir := fmt.Sprintf("/proc/%d/fd", p.cmd.Process.Pid)
	testutil.WaitFor(t, "the proxy's descriptors freed", func() bool {
		ents, err := os.ReadDir(fdDir)
		return err == nil && len(ents) < 64
	})
	// The listener is still there: a real session goes through.
	c := open(t, p.addr, req{token: token})
	c.send(2, []byte("still here"))
	if got := string(c.readData(10)); got != "still here" {
		t.Fatalf("echo %q", got)
	}
	if code, _ := httpGet(t, "http://"+p.metrics+"/readyz"); code != 200 {
		t.Fatalf("/readyz %d after a descriptor shortage, want 200", code)
	}
	_, body := httpGet(t, "http://"+p.metrics+"/metrics")
	m := shed.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no consoleproxy_connections_shed_total in /metrics")
	}
	if n, _ := strconv.Atoi(m[1]); n == 0 {
		t.Fatal("consoleproxy_connections_shed_total is 0 after a descriptor shortage")
	}
}
