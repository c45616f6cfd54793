package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/consoleproxy/consoleproxy/relay/testpki"
)

// pki is a test CA (relay/testpki) with a server certificate for
// 127.0.0.1 and a client certificate, written to files.
type pki struct {
	ca                *testpki.CA
	pool              *x509.CertPool
	certFile, keyFile string
	caFile            string
	client            tls.Certificate
	// clientFile and clientKeyFile hold client as files.
	clientFile, clientKeyFile string
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	ca := testpki.NewCA(t, "test CA")
	p := &pki{ca: ca, pool: ca.Pool, caFile: ca.File}
	p.certFile, p.keyFile = p.issue(t, "server")
	c := ca.Issue(t, "client", x509.ExtKeyUsageClientAuth, nil)
	p.client, p.clientFile, p.clientKeyFile = c.TLS, c.CertFile, c.KeyFile
	return p
}

// issue writes a server certificate for 127.0.0.1 signed by the CA and its
// key.
func (p *pki) issue(t testing.TB, name string) (string, string) {
	t.Helper()
	l := p.ca.Issue(t, name, x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	return l.CertFile, l.KeyFile
}

// tlsRefused tries a TLS connection and an upgrade request; it returns nil
// if an HTTP answer came back, else the error that stopped it.
func tlsRefused(t *testing.T, addr string, cfg *tls.Config) error {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(req{token: "x"}.request(addr))); err != nil {
		return err
	}
	_, err = conn.Read(make([]byte, 1))
	return err
}

func dialTLS(t testing.TB, addr string, cfg *tls.Config, r req) (*wsClient, error) {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	return upgrade(t, conn, addr, r), nil
}

// wss:// end to end, plain and TLS on one port, the Origin policy seeing
// TLS, --ssl-only, the minimum version, mutual TLS, and SIGHUP swapping the
// certificate while a session stays up.
func TestTLS(t *testing.T) {
	k := newPKI(t)
	b := startBackend(t, echo)
	p := startBinary(t, []string{tokenLine("tls-a", b.port()), tokenLine("tls-b", b.port()), tokenLine("tls-c", b.port())},
		"--cert", k.certFile, "--key", k.keyFile, "--token-reuse", "shared")
	client := &tls.Config{RootCAs: k.pool}

	c, err := dialTLS(t, p.addr, client, req{token: "tls-a", headers: map[string]string{"Origin": "https://" + p.addr}})
	if err != nil || c.resp.StatusCode != 101 {
		t.Fatalf("wss: %v %v", err, c)
	}
	c.send(ws.OpBinary, []byte("over tls"))
	if got := string(c.readData(8)); got != "over tls" {
		t.Fatalf("echo %q", got)
	}
	if plain := dial(t, p.addr, req{token: "tls-b"}); plain.resp.StatusCode != 101 {
		t.Fatalf("plain beside TLS: %d", plain.resp.StatusCode)
	}
	if h, _ := dialTLS(t, p.addr, client, req{token: "tls-b", headers: map[string]string{"Origin": "http://" + p.addr}}); h.resp.StatusCode != 403 {
		t.Fatalf("http origin over TLS: %d", h.resp.StatusCode)
	}
	if h := dial(t, p.addr, req{token: "tls-b", headers: map[string]string{"Origin": "https://" + p.addr}}); h.resp.StatusCode != 403 {
		t.Fatalf("https origin over plain: %d", h.resp.StatusCode)
	}

	// SIGHUP with a new certificate: the live session stays, new clients see the new one.
	newCert, newKey := k.issue(t, "server2")
	for _, f := range [][2]string{{newCert, k.certFile}, {newKey, k.keyFile}} {
		data, _ := os.ReadFile(f[0])
		_ = os.WriteFile(f[1], data, 0o600)
	}
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "reload", func() bool { return strings.Contains(p.stderr.String(), `"msg":"reloaded"`) })
	c2, err := dialTLS(t, p.addr, client, req{token: "tls-c"})
	if err != nil {
		t.Fatal(err)
	}
	if cn := c2.conn.(*tls.Conn).ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "server2" {
		t.Fatalf("after SIGHUP the server shows certificate %q, want server2", cn)
	}
	c.send(ws.OpBinary, []byte("still up"))
	if got := string(c.readData(8)); got != "still up" {
		t.Fatalf("live session after SIGHUP: %q", got)
	}
}

func TestTLSOnlyAndVersions(t *testing.T) {
	k := newPKI(t)
	b := startBackend(t, echo)
	p := startBinary(t, []string{tokenLine("only-a", b.port())},
		"--cert", k.certFile, "--key", k.keyFile, "--ssl-only", "--ssl-minimum-version", "tlsv1.3")
	if c := dial(t, p.addr, req{token: "only-a"}); c.resp.StatusCode != 400 {
		t.Fatalf("plaintext HTTP under --ssl-only: %d", c.resp.StatusCode)
	}
	raw := dialRaw(t, p.addr)
	_, _ = raw.Write([]byte{0x00, 0x01, 0x02})
	_ = raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := raw.Read(make([]byte, 16)); n != 0 || err == nil {
		t.Fatalf("non-HTTP plaintext: read %d, %v; want the connection closed", n, err)
	}
	if tlsRefused(t, p.addr, &tls.Config{RootCAs: k.pool, MaxVersion: tls.VersionTLS12}) == nil {
		t.Fatal("a TLS 1.2 client got through --ssl-minimum-version tlsv1.3")
	}
	c, err := dialTLS(t, p.addr, &tls.Config{RootCAs: k.pool}, req{token: "only-a"})
	if err != nil || c.resp.StatusCode != 101 {
		t.Fatalf("TLS 1.3 client: %v", err)
	}
}

func TestMutualTLS(t *testing.T) {
	k := newPKI(t)
	b := startBackend(t, echo)
	p := startBinary(t, []string{tokenLine("mtls", b.port())},
		"--cert", k.certFile, "--key", k.keyFile, "--ssl-client-ca", k.caFile)
	if tlsRefused(t, p.addr, &tls.Config{RootCAs: k.pool}) == nil {
		t.Fatal("no client certificate, yet answered")
	}
	c, err := dialTLS(t, p.addr, &tls.Config{RootCAs: k.pool, Certificates: []tls.Certificate{k.client}}, req{token: "mtls"})
	if err != nil || c.resp.StatusCode != 101 {
		t.Fatalf("with a client certificate: %v", err)
	}
}

// Start-up fails clearly when a certificate or key is unreadable or the two
// do not match.
func TestTLSStartupErrors(t *testing.T) {
	k := newPKI(t)
	_, otherKey := k.issue(t, "other")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--cert", k.certFile, "--key", otherKey}, "does not match"},
		{[]string{"--cert", filepath.Join(t.TempDir(), "missing.pem"), "--key", k.keyFile}, "cannot read"},
		{[]string{"--cert", k.certFile}, "go together"},
		{[]string{"--ssl-only"}, "needs --cert"},
		{[]string{"--cert", k.certFile, "--key", k.keyFile, "--ssl-ciphers", "RC4-MD5"}, "RC4-MD5"},
	} {
		cmd := exec.Command(consoleproxyBinary(t), append(tc.args, "--listen", freePort(t), "--metrics-listen", "")...)
		cmd.Dir = t.TempDir()
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("%v: %v %s (want %q)", tc.args, err, out, tc.want)
		}
	}
}
