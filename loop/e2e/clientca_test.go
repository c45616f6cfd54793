//go:build linux

package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gobwas/ws"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/internal/testutil/pki"
)

// SIGHUP re-reads --ssl-client-ca (issue 12, finding 7c): after the CA file
// is replaced by CA2 a client certified by CA2 gets in and one certified by
// CA1 does not, not even by resuming a TLS session it had before; a live
// session stays; an unreadable CA file keeps the previous CA, with an error
// logged.
func TestSIGHUPReloadsClientCA(t *testing.T) {
	ca1, ca2 := pki.NewCA(t, "client CA 1"), pki.NewCA(t, "client CA 2")
	server := ca1.Issue(t, "server", x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	old := ca1.Issue(t, "client of CA 1", x509.ExtKeyUsageClientAuth, nil)
	fresh := ca2.Issue(t, "client of CA 2", x509.ExtKeyUsageClientAuth, nil)
	caFile := ca1.WriteCert(t, filepath.Join(t.TempDir(), "client-ca.pem"))
	b := startBackend(t, echo)
	p := startBinary(t, []string{tokenLine("mtls-a", b.port()), tokenLine("mtls-b", b.port())},
		"--cert", server.CertFile, "--key", server.KeyFile, "--ssl-client-ca", caFile, "--token-reuse", "shared")
	oldCfg := &tls.Config{RootCAs: ca1.Pool, Certificates: []tls.Certificate{old.TLS}, ClientSessionCache: tls.NewLRUClientSessionCache(4)}
	freshCfg := &tls.Config{RootCAs: ca1.Pool, Certificates: []tls.Certificate{fresh.TLS}}

	if tlsRefused(t, p.addr, freshCfg) == nil {
		t.Fatal("a client of CA 2 got in under CA 1")
	}
	live, err := dialTLS(t, p.addr, oldCfg, req{token: "mtls-a"})
	if err != nil || live.resp.StatusCode != 101 {
		t.Fatalf("client of CA 1 under CA 1: %v", err)
	}
	// A second connection resumes the session: the resumption below is a real attempt.
	if c, err := dialTLS(t, p.addr, oldCfg, req{token: "mtls-b"}); err != nil || c.resp.StatusCode != 101 ||
		!c.conn.(*tls.Conn).ConnectionState().DidResume {
		t.Fatalf("client of CA 1 did not resume its session: %v", err)
	}

	ca2.WriteCert(t, caFile)
	reloads := strings.Count(p.stderr.String(), `"msg":"reloaded"`)
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	testutil.WaitFor(t, "reload", func() bool { return strings.Count(p.stderr.String(), `"msg":"reloaded"`) > reloads })
	if c, err := dialTLS(t, p.addr, freshCfg, req{token: "mtls-b"}); err != nil || c.resp.StatusCode != 101 {
		t.Fatalf("client of CA 2 after the reload: %v", err)
	}
	if tlsRefused(t, p.addr, oldCfg) == nil {
		t.Fatal("a client of CA 1 resumed its session after CA 1 was replaced")
	}
	if tlsRefused(t, p.addr, &tls.Config{RootCAs: ca1.Pool, Certificates: []tls.Certificate{old.TLS}}) == nil {
		t.Fatal("a client of CA 1 got in after CA 1 was replaced")
	}
	live.send(ws.OpBinary, []byte("still here"))
	if got := string(live.readData(10)); got != "still here" {
		t.Fatalf("live session after the reload: %q", got)
	}

	if err := os.WriteFile(caFile, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reloads = strings.Count(p.stderr.String(), `"msg":"reloaded"`)
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	testutil.WaitFor(t, "reload", func() bool { return strings.Count(p.stderr.String(), `"msg":"reloaded"`) > reloads })
	if !strings.Contains(p.stderr.String(), "--ssl-client-ca") {
		t.Fatalf("no error logged for the unreadable CA file:\n%s", p.stderr)
	}
	if c, err := dialTLS(t, p.addr, freshCfg, req{token: "mtls-b"}); err != nil || c.resp.StatusCode != 101 {
		t.Fatalf("client of CA 2 after a failed reload: %v", err)
	}
}
