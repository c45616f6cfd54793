//go:build linux

package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

// A real browser through the security proxy of the real binary: noVNC
// (Debian's, served by --web) opens the console of QEMU's X.509 VNC server
// through consoleproxy started with --vnc-auth-schemes vencrypt and the
// --vencrypt-* files. noVNC goes through the proxy's side of the handshake
// (RFB 3.8, None, SecurityResult OK: a message per step, as noVNC needs)
// and shows QEMU's desktop name from ServerInit, which only comes through
// the TLS channel the proxy opened with its client certificate.
func TestBrowserNoVNCVeNCrypt(t *testing.T) {
	const novnc = "/usr/share/novnc"
	testutil.NeedPath(t, novnc, "noVNC")
	port, ca, client := startTLSVNCQEMU(t)

	p := startBinary(t, []string{tokenLine("vencrypt-browser", port)}, "--web", novnc,
		"--vnc-auth-schemes", "vencrypt", "--vencrypt-ca-certs", ca.File,
		"--vencrypt-client-cert", client.CertFile, "--vencrypt-client-key", client.KeyFile)
	b := startBrowser(t)
	b.page(fmt.Sprintf("http://%s/vnc_lite.html?path=%%3Ftoken%%3Dvencrypt-browser", p.addr))
	defer func() {
		if t.Failed() {
			t.Logf("proxy log:\n%s\n%s", p.stderr.String(), grepLines(metricsOf(t, p), "consoleproxy_"))
		}
	}()
	status := b.waitEval(`document.querySelector('#status') ? document.querySelector('#status').textContent : ''`,
		func(s string) bool { return strings.Contains(s, "Connected") }, "noVNC to connect through VeNCrypt")
	if !strings.Contains(status, "QEMU ("+vncName+")") {
		t.Fatalf("noVNC's status %q lacks QEMU's desktop name", status)
	}
	if m := metricsOf(t, p); !strings.Contains(m, `consoleproxy_sessions_total{result="ok"} 1`) {
		t.Fatalf("the session was not counted:\n%s", grepLines(m, "sessions_total"))
	}
}
