//go:build linux

package e2e

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

// browser is headless Chromium driven over the DevTools protocol with the
// tests' own WebSocket client (no Node.js needed).
type browser struct {
	t       *testing.T
	cmd     *exec.Cmd
	c       *wsClient
	next    int
	session string
}

// chromiumFlags are the flags this machine needs (closed network, root).
var chromiumFlags = []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
	"--disable-background-networking", "--disable-component-update", "--disable-sync", "--remote-debugging-port=0",
	"--window-size=800,600", "--ignore-certificate-errors"} // the wss test's CA is the test's own

func startBrowser(t *testing.T) *browser {
	t.Helper()
	bin := testutil.NeedBinary(t, "chromium")
	profile, err := os.MkdirTemp("", "consoleproxy-chromium")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append(chromiumFlags, "--user-data-dir="+profile, "about:blank")...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its helpers die with it
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		_ = os.RemoveAll(profile)
	})
	re := regexp.MustCompile(`DevTools listening on (ws://\S+)`)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	var wsURL string
	select {
	case wsURL = <-found:
	case <-time.After(30 * time.Second):
		t.Fatal("chromium did not start its DevTools endpoint")
	}
	u, err := url.Parse(wsURL)
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{t: t, cmd: cmd}
	b.c = open(t, u.Host, req{target: u.Path})
	_ = b.c.conn.SetDeadline(time.Now().Add(2 * time.Minute))
	return b
}

// call sends a DevTools command (to the attached page when there is one)
// and returns its result, skipping events.
func (b *browser) call(method string, params map[string]any) json.RawMessage {
	b.t.Helper()
	b.next++
	msg := map[string]any{"id": b.next, "method": method, "params": params}
	if b.session != "" && !strings.HasPrefix(method, "Target.") {
		msg["sessionId"] = b.session
	}
	out, _ := json.Marshal(msg)
	b.c.send(ws.OpText, out)
	for {
		m, err := b.c.next()
		if err != nil {
			b.t.Fatalf("devtools %s: %v", method, err)
		}
		var reply struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(m.payload, &reply) != nil || reply.ID != b.next {
			continue
		}
		if reply.Error != nil {
			b.t.Fatalf("devtools %s: %s", method, reply.Error.Message)
		}
		return reply.Result
	}
}

// open a new page at pageURL and attach to it.
func (b *browser) page(pageURL string) {
	b.t.Helper()
	var target struct{ TargetID string }
	_ = json.Unmarshal(b.call("Target.createTarget", map[string]any{"url": pageURL}), &target)
	var att struct{ SessionID string }
	_ = json.Unmarshal(b.call("Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}), &att)
	b.session = att.SessionID
}

// eval evaluates a JavaScript expression returning a string.
func (b *browser) eval(expr string) string {
	b.t.Helper()
	var r struct {
		Result struct {
			Value any `json:"value"`
		} `json:"result"`
	}
	_ = json.Unmarshal(b.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}), &r)
	return fmt.Sprint(r.Result.Value)
}

// waitEval polls expr until it returns want or the deadline passes.
func (b *browser) waitEval(expr string, want func(string) bool, what string) string {
	b.t.Helper()
	var v string
	if !testutil.Eventually(browserWait, func() bool { v = b.eval(expr); return want(v) }) {
		b.t.Fatalf("timed out waiting for %s (last %q)", what, v)
	}
	return v
}

// browserWait bounds a wait for the page: a headless browser on a loaded
// machine is slower than a socket.
const browserWait = 30 * time.Second

// screenshot returns a PNG of the page.
func (b *browser) screenshot() []byte {
	b.t.Helper()
	var r struct{ Data string }
	_ = json.Unmarshal(b.call("Page.captureScreenshot", map[string]any{"format": "png"}), &r)
	png, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil {
		b.t.Fatal(err)
	}
	if dir := os.Getenv("CONSOLEPROXY_SCREENSHOTS"); dir != "" {
		_ = os.WriteFile(fmt.Sprintf("%s/%s-%d.png", dir, b.t.Name(), b.next), png, 0o644)
	}
	return png
}
