//go:build linux

package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	mathrand "math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/internal/testutil/pki"
	"github.com/consoleproxy/consoleproxy/loop"
)

// serverPKI is a test CA (internal/testutil/pki) with a server certificate for
// 127.0.0.1 and a client certificate, written to files.
type serverPKI struct {
	ca                *pki.CA
	pool              *x509.CertPool
	certFile, keyFile string
	caFile            string
	client            tls.Certificate
	// clientFile and clientKeyFile hold client as files.
	clientFile, clientKeyFile string
}

func newPKI(t testing.TB) *serverPKI {
	t.Helper()
	ca := pki.NewCA(t, "test CA")
	p := &serverPKI{ca: ca, pool: ca.Pool, caFile: ca.File}
	p.certFile, p.keyFile = p.issue(t, "server")
	c := ca.Issue(t, "client", x509.ExtKeyUsageClientAuth, nil)
	p.client, p.clientFile, p.clientKeyFile = c.TLS, c.CertFile, c.KeyFile
	return p
}

// issue writes a server certificate for 127.0.0.1 signed by the CA and its
// key.
func (p *serverPKI) issue(t testing.TB, name string) (string, string) {
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
	testutil.WaitFor(t, "reload", func() bool { return strings.Contains(p.stderr.String(), `"msg":"reloaded"`) })
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
		cmd := exec.Command(consoleproxyBinary(t), append(tc.args, "--listen", testutil.FreeAddr(t), "--metrics-listen", "")...)
		cmd.Dir = t.TempDir()
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("%v: %v %s (want %q)", tc.args, err, out, tc.want)
		}
	}
}

// wss:// sessions hold no goroutine once their handshake is done, and a
// connection that has not sent a whole ClientHello holds none at all: the
// proxy's go_goroutines stays flat (at most one per ten connections) while
// 1,000 idle wss:// sessions are added, and while 300 more connections hold
// back their ClientHello (half say nothing, half stop in the middle of it),
// a new wss:// client is still served.
func TestTLSGoroutinesFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("1,300 connections")
	}
	const sessions, silent = 1000, 300
	k := newPKI(t)
	b := startBackend(t, echo)
	toks, lines := make([]string, 0, sessions+2), make([]string, 0, sessions+2)
	for i := 0; i < sessions+2; i++ {
		toks = append(toks, "flat-"+strconv.Itoa(i))
		lines = append(lines, tokenLine(toks[i], b.port()))
	}
	p := startBinary(t, lines, "--cert", k.certFile, "--key", k.keyFile, "--ping-interval", "0",
		"--handshake-timeout", "10m")
	goroutines := func() float64 {
		_, body := httpGet(t, "http://"+p.metrics+"/metrics")
		return promValue(t, body, "go_goroutines")
	}
	client := &tls.Config{RootCAs: k.pool}
	openEcho := func(tok string) *wsClient {
		c, err := dialTLS(t, p.addr, client, req{token: tok, protocol: "binary"})
		if err != nil || c.resp.StatusCode != 101 {
			t.Fatalf("wss %s: %v %v", tok, err, c)
		}
		c.send(ws.OpBinary, []byte("e"))
		if got := string(c.readData(1)); got != "e" {
			t.Fatalf("echo %q", got)
		}
		return c
	}
	openEcho(toks[sessions]) // the first handshake starts what stays (pools, the scrape's connection)
	base := goroutines()
	held := make([]net.Conn, 0, sessions+silent)
	for i := 0; i < sessions; i++ {
		held = append(held, openEcho(toks[i]).conn)
		if n := i + 1; n%100 == 0 {
			if g := goroutines(); g > base+float64(n/10) {
				t.Fatalf("%d idle wss sessions: %v goroutines, from %v", n, g, base)
			}
		}
	}
	hello := clientHello(t)
	for i := 0; i < silent; i++ {
		c := dialRaw(t, p.addr)
		if i%2 == 1 {
			if _, err := c.Write(hello[:len(hello)/2]); err != nil {
				t.Fatal(err)
			}
		}
		held = append(held, c)
	}
	// A wss:// client behind them all is served, and by then the proxy has
	// read what they sent.
	openEcho(toks[sessions+1])
	testutil.WaitFor(t, "the proxy to hold every connection", func() bool {
		_, body := httpGet(t, "http://"+p.metrics+"/metrics")
		return promValue(t, body, "consoleproxy_connections_pending") >= silent
	})
	if g := goroutines(); g > base+float64((sessions+silent)/10) {
		t.Fatalf("%d idle wss sessions and %d connections without a ClientHello: %v goroutines, from %v", sessions, silent, g, base)
	}
	t.Logf("go_goroutines %v with 1 wss session, %v with %d more and %d without a ClientHello", base, goroutines(), sessions, silent)
	for _, c := range held {
		c.Close()
	}
}

// Handshakes are bounded: clients that send a whole ClientHello and then
// nothing hold at most loop.TLSHandshakers goroutines, the next
// loop.TLSHandshakeQueue wait for one, and past that a connection is closed
// and counted as overloaded. Once they are gone a wss:// client is served.
// --handshake-timeout ends a handshake that stalls (handshake_timeout).
func TestTLSHandshakesBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("1,100 connections")
	}
	const over = 16
	k := newPKI(t)
	cert, err := loop.LoadCert(k.certFile, k.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg := &tls.Config{GetCertificate: cert.GetCertificate}
	p := startProxy(t, func(cfg *loop.Config) {
		cfg.MaxPending = -1
		cfg.HandshakeTimeout = time.Hour
		cfg.TLS = &loop.TLSConfig{Config: tlsCfg}
	})
	b := startBackend(t, echo)
	hello := clientHello(t)
	base := runtime.NumGoroutine()
	var stalled []net.Conn
	for i := 0; i < loop.TLSHandshakers+loop.TLSHandshakeQueue+over; i++ {
		c := dialRaw(t, p.addr)
		if _, err := c.Write(hello); err != nil {
			t.Fatal(err)
		}
		stalled = append(stalled, c)
	}
	wantMetric(t, p, fmt.Sprintf(`consoleproxy_sessions_total{result="overloaded"} %d`, over))
	if n := handshakeGoroutines(); n != loop.TLSHandshakers {
		t.Fatalf("%d stalled handshakes run on %d goroutines, want %d", len(stalled), n, loop.TLSHandshakers)
	}
	// Other tests' servers may still be winding down in this process.
	if g := runtime.NumGoroutine(); g > base+loop.TLSHandshakers+goroutineSlack {
		t.Fatalf("%d stalled handshakes: %d goroutines, from %d", len(stalled), g, base)
	}
	for _, c := range stalled {
		c.Close()
	}
	testutil.WaitFor(t, "the stalled handshakes to end", func() bool { return p.srv.Pending() == 0 })
	c, err := dialTLS(t, p.addr, &tls.Config{RootCAs: k.pool}, req{token: p.mint(b.port(), nil)})
	if err != nil || c.resp.StatusCode != 101 {
		t.Fatalf("wss:// client after the stalled ones: %v %v", err, c)
	}
	c.send(ws.OpBinary, []byte("tls"))
	if got := string(c.readData(3)); got != "tls" {
		t.Fatalf("echo %q", got)
	}

	short := startProxy(t, func(cfg *loop.Config) {
		cfg.HandshakeTimeout = 300 * time.Millisecond
		cfg.TLS = &loop.TLSConfig{Config: tlsCfg}
	})
	s := dialRaw(t, short.addr)
	if _, err := s.Write(hello); err != nil {
		t.Fatal(err)
	}
	_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, s); err != nil { // the server's flight, then EOF
		t.Fatalf("a stalled handshake was not closed: %v", err)
	}
	wantMetric(t, short, `consoleproxy_sessions_total{result="handshake_timeout"} 1`)
	testutil.WaitFor(t, "its slot back", func() bool { return short.srv.Pending() == 0 })
}

// goroutineSlack allows for goroutines of other tests' servers still
// winding down in this process.
const goroutineSlack = 16

// handshakeGoroutines counts the goroutines running TLS handshakes.
func handshakeGoroutines() int {
	var b bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&b, 2)
	return strings.Count(b.String(), "loop.(*handshakers).run(")
}

// splitConn writes each buffer in random pieces of 1 to 700 bytes, so the
// proxy's reads end anywhere inside TLS records.
type splitConn struct {
	net.Conn
	rnd *mathrand.Rand
}

func (s splitConn) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n := min(1+s.rnd.Intn(700), len(p))
		m, err := s.Conn.Write(p[:n])
		written += m
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

// The record layer on the event loop: records that arrive in pieces split
// anywhere, frames from one byte to several records each way, both
// subprotocols; a client's close_notify ends the session after everything
// it sent reached the host; a forged record is refused with an alert and
// the connection closed, and the host gets only what came before it.
func TestTLSRecordsOnLoop(t *testing.T) {
	k := newPKI(t)
	cert, err := loop.LoadCert(k.certFile, k.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, func(cfg *loop.Config) {
		cfg.TLS = &loop.TLSConfig{Config: &tls.Config{GetCertificate: cert.GetCertificate}}
	})
	rnd := mathrand.New(mathrand.NewSource(1))
	dialSplit := func(b *backend, protocol string) (*wsClient, *tls.Conn, net.Conn) {
		raw := dialRaw(t, p.addr)
		tc := tls.Client(splitConn{raw, rnd}, &tls.Config{RootCAs: k.pool, ServerName: "127.0.0.1"})
		c := upgrade(t, tc, p.addr, req{token: p.mint(b.port(), nil), protocol: protocol})
		if c.resp.StatusCode != 101 {
			t.Fatalf("status %d", c.resp.StatusCode)
		}
		return c, tc, raw
	}

	echoHost := startBackend(t, echo)
	for _, protocol := range []string{"binary", "base64"} {
		c, _, _ := dialSplit(echoHost, protocol)
		op := ws.OpBinary
		if protocol == "base64" {
			op = ws.OpText
		}
		for _, size := range []int{1, 100, 16<<10 - 30, 16 << 10, 16<<10 + 1, 70 << 10, 300 << 10, 1 + rnd.Intn(200<<10)} {
			payload := make([]byte, size)
			rnd.Read(payload)
			frame := payload
			if op == ws.OpText {
				frame = []byte(base64.StdEncoding.EncodeToString(payload))
			}
			c.send(op, frame)
			if got := c.readData(size); !bytes.Equal(got, payload) {
				t.Fatalf("%s: %d bytes echoed wrong", protocol, size)
			}
		}
	}

	got := make(chan []byte, 2)
	sink := startBackend(t, func(_ *backend, c net.Conn) {
		b, _ := io.ReadAll(c)
		got <- b
		c.Close()
	})
	c, tc, _ := dialSplit(sink, "binary")
	var want []byte
	for range 20 {
		payload := make([]byte, rnd.Intn(40<<10))
		rnd.Read(payload)
		want = append(want, payload...)
		c.send(ws.OpBinary, payload)
	}
	if err := tc.CloseWrite(); err != nil { // close_notify
		t.Fatal(err)
	}
	select {
	case b := <-got:
		if !bytes.Equal(b, want) {
			t.Fatalf("after close_notify the host got %d bytes, want the %d sent", len(b), len(want))
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the host never saw EOF after close_notify")
	}

	c, tc, raw := dialSplit(sink, "binary")
	c.send(ws.OpBinary, []byte("before"))
	forged := append([]byte{0x17, 0x03, 0x03, 0x00, 0x40}, make([]byte, 0x40)...)
	if _, err := raw.Write(forged); err != nil {
		t.Fatal(err)
	}
	_ = tc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, tc); err == nil || !strings.Contains(err.Error(), "bad record MAC") {
		t.Fatalf("after a forged record: %v, want the proxy's bad_record_mac alert", err)
	}
	select {
	case b := <-got:
		if string(b) != "before" {
			t.Fatalf("the host got %q, want only what came before the forged record", b)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the host never saw EOF after the forged record")
	}
}

// stallConn is a client socket whose writes never fail for a deadline: each
// try waits at most a second, and the first time one takes nothing it
// calls onStall and goes on waiting (crypto/tls's writes cannot be retried
// after a timeout).
type stallConn struct {
	net.Conn
	stalled bool
	onStall func()
}

func (s *stallConn) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		_ = s.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		n, err := s.Conn.Write(p)
		written, p = written+n, p[n:]
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if !s.stalled {
				s.stalled = true
				s.onStall()
			}
			continue
		}
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

func (s *stallConn) SetDeadline(t time.Time) error { return s.Conn.SetReadDeadline(t) }

// A wss:// client faster than its host is pushed back through TCP like a
// plain one (reading its socket pauses while the host holds bytes back),
// never cut: every byte arrives once and in order, and the proxy holds at
// most loop.MaxHeldUpTLS of them.
func TestTLSUploadPushedBack(t *testing.T) {
	release := make(chan struct{})
	got := make(chan []byte, 1)
	b := startBackend(t, func(_ *backend, c net.Conn) {
		defer c.Close()
		<-release
		var buf bytes.Buffer
		_, _ = io.Copy(&buf, struct{ io.Reader }{c})
		got <- buf.Bytes()
	})
	k := newPKI(t)
	cert, err := loop.LoadCert(k.certFile, k.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, func(cfg *loop.Config) {
		cfg.TLS = &loop.TLSConfig{Config: &tls.Config{GetCertificate: cert.GetCertificate}}
	})
	var most int64
	sc := &stallConn{Conn: dialRaw(t, p.addr), onStall: func() {
		most = p.srv.HeldUp()
		close(release)
	}}
	c := upgrade(t, tls.Client(sc, &tls.Config{RootCAs: k.pool, ServerName: "127.0.0.1"}), p.addr, req{token: p.mint(b.port(), nil)})
	if c.resp.StatusCode != 101 {
		t.Fatalf("status %d", c.resp.StatusCode)
	}
	_ = c.conn.SetDeadline(time.Now().Add(time.Minute))
	const total, chunk = 32 << 20, 32 << 10
	payload := make([]byte, chunk)
	for off := 0; off < total; off += chunk {
		fillPattern(payload, off)
		if _, err := c.conn.Write(maskedFrame(true, ws.OpBinary, payload)); err != nil {
			t.Fatalf("after %d bytes: %v (the proxy cut the upload)", off, err)
		}
	}
	if !sc.stalled {
		t.Fatal("the client was never pushed back while its host read nothing")
	}
	expectUploadDelivered(t, c, got, total, most, loop.MaxHeldUpTLS)
}

// What the kernel offers for TLS is detected at start-up and logged once:
// with the tls ULP, that it is there (the records are still sealed in user
// space); without it, that it is not and why (loop.KernelTLS's reason). A
// SIGHUP reload does not log it again; a proxy without TLS says nothing.
func TestKernelTLSLoggedOnce(t *testing.T) {
	k := newPKI(t)
	b := startBackend(t, echo)
	p := startBinary(t, []string{tokenLine("ktls", b.port())}, "--cert", k.certFile, "--key", k.keyFile)
	lines := func() []string {
		var out []string
		for _, l := range strings.Split(p.stderr.String(), "\n") {
			if strings.Contains(l, "kernel TLS") {
				out = append(out, l)
			}
		}
		return out
	}
	testutil.WaitFor(t, "the kernel TLS line", func() bool { return len(lines()) > 0 })
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	testutil.WaitFor(t, "reload", func() bool { return strings.Contains(p.stderr.String(), `"msg":"reloaded"`) })
	got := lines()
	if len(got) != 1 {
		t.Fatalf("%d kernel TLS lines, want 1:\n%s", len(got), strings.Join(got, "\n"))
	}
	ok, why := loop.KernelTLS()
	want := `"msg":"kernel TLS not available; wss:// records are sealed in user space on the event loops","reason":` + strconv.Quote(why)
	if ok {
		want = `"msg":"kernel TLS (the tls ULP) is available; wss:// records are still sealed in user space on the event loops"`
	}
	if !strings.Contains(got[0], want) {
		t.Fatalf("kernel TLS line %s, want it to hold %s", got[0], want)
	}
	t.Logf("kernel TLS available: %v; %s", ok, got[0])

	plain := startBinary(t, []string{tokenLine("ktls-plain", b.port())})
	if c := open(t, plain.addr, req{token: "ktls-plain"}); c.resp.StatusCode != 101 {
		t.Fatalf("plain proxy: %d", c.resp.StatusCode)
	}
	if s := plain.stderr.String(); strings.Contains(s, "kernel TLS") {
		t.Fatalf("a proxy without TLS logged kernel TLS:\n%s", s)
	}
}
