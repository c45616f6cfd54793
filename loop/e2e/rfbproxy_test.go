package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/loop"
	"github.com/consoleproxy/consoleproxy/relay/reuse"
	"github.com/consoleproxy/consoleproxy/relay/rfb"
)

// rfbPlainHost is an RFB 3.8 server offering security types types; after the
// proxy picks one it sends SecurityResult OK and echoes. What it read of
// the proxy's handshake goes to got (version, then the chosen type) unless
// got is nil.
func rfbPlainHost(types []byte, got chan<- []byte) func(*backend, net.Conn) {
	return func(_ *backend, c net.Conn) {
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		_, _ = io.WriteString(c, "RFB 003.008\n")
		hs := make([]byte, 12+1)
		if _, err := io.ReadFull(c, hs[:12]); err != nil {
			return
		}
		_, _ = c.Write(append([]byte{byte(len(types))}, types...))
		if _, err := io.ReadFull(c, hs[12:]); err != nil {
			return
		}
		if got != nil {
			got <- hs
		}
		_, _ = c.Write([]byte{0, 0, 0, 0})
		_ = c.SetDeadline(time.Time{})
		copyPlain(c, c)
	}
}

func withSecurity(t testing.TB, schemes ...rfb.Scheme) func(*loop.Config) {
	t.Helper()
	sp, err := rfb.New(rfb.Config{Schemes: schemes, CAFile: newPKI(t).caFile}) // these hosts never get as far as TLS
	if err != nil {
		t.Fatal(err)
	}
	return func(cfg *loop.Config) { cfg.Security = sp }
}

// The security proxy speaks for the client, one message per step after
// each of the client's answers (the host's SecurityResult was read by the
// proxy already); the client's answers may be split across frames and share
// a frame with console data, and none of them reaches the host, which sees
// only the proxy's version and its choice of None. On both subprotocols.
func TestRFBSecurityProxySplitAnswer(t *testing.T) {
	for _, proto := range []string{"binary", "base64"} {
		t.Run(proto, func(t *testing.T) {
			got := make(chan []byte, 1)
			back := startBackend(t, rfbPlainHost([]byte{2, 1}, got))
			p := startProxy(t, withSecurity(t, rfb.SchemeVeNCrypt, rfb.SchemeNone))
			c := open(t, p.addr, req{protocol: proto, token: p.mint(back.port(), nil)})
			op := ws.OpBinary
			if proto == "base64" {
				op = ws.OpText
			}
			// Each of the proxy's messages is a WebSocket message of its own,
			// sent once the client's answer to the one before is complete.
			wantMessage(t, c, rfb.GreetVersion)
			c.send(op, encodeFor(proto, "RFB 00"))
			c.send(op, encodeFor(proto, "3.008\n"))
			wantMessage(t, c, rfb.GreetTypes)
			c.send(op, encodeFor(proto, "\x01hello"))
			wantMessage(t, c, rfb.GreetResult)
			if hs := <-got; string(hs) != "RFB 003.008\n\x01" {
				t.Fatalf("host read %q: want the proxy's version and type None", hs)
			}
			if r := c.readData(5); string(r) != "hello" {
				t.Fatalf("after the answer: %q, want the echo of hello alone", r)
			}
		})
	}
}

// wantMessage requires the next data message to be exactly want.
func wantMessage(t testing.TB, c *wsClient, want []byte) {
	t.Helper()
	m, err := c.next()
	if err != nil {
		t.Fatal(err)
	}
	if m.op == ws.OpClose {
		t.Fatalf("close %d, want the message %q", closeCode(m), want)
	}
	if got := c.readDataFrom(m); !bytes.Equal(got, want) {
		t.Fatalf("message %q, want %q", got, want)
	}
}

// rfbAnswer plays a pipelining client through the proxy's handshake: its
// version, None and console data in one frame.
func rfbAnswer(t testing.TB, c *wsClient, data string) {
	t.Helper()
	wantMessage(t, c, rfb.GreetVersion)
	c.send(ws.OpBinary, []byte("RFB 003.008\n\x01"+data))
	wantMessage(t, c, rfb.GreetTypes)
	wantMessage(t, c, rfb.GreetResult)
}

// encodeFor is a payload as the subprotocol carries it.
func encodeFor(proto, s string) []byte {
	if proto == "base64" {
		return []byte(base64.StdEncoding.EncodeToString([]byte(s)))
	}
	return []byte(s)
}

// A client that answers the greeting with another RFB version is closed
// with 1008 and the host never sees its bytes (the host echoes); a host offering none of the
// configured schemes is a 502 (rfb_failed) before any upgrade.
func TestRFBSecurityProxyRefusals(t *testing.T) {
	got := make(chan []byte, 1)
	back := startBackend(t, rfbPlainHost([]byte{1}, got))
	p := startProxy(t, withSecurity(t, rfb.SchemeVeNCrypt, rfb.SchemeNone))
	c := open(t, p.addr, req{protocol: "binary", token: p.mint(back.port(), nil)})
	wantMessage(t, c, rfb.GreetVersion)
	c.send(ws.OpBinary, []byte("RFB 003.007\n\x01"))
	// An echo of the answer would mean it reached the host.
	if code, data := c.expectClose(); code != 1008 || len(data) > 0 {
		t.Fatalf("close %d after %q, want 1008 and nothing", code, data)
	}
	if hs := <-got; string(hs) != "RFB 003.008\n\x01" {
		t.Fatalf("host read %q", hs)
	}

	only := startProxy(t, withSecurity(t, rfb.SchemeVeNCrypt))
	r := dial(t, only.addr, req{protocol: "binary", token: only.mint(back.port(), nil)})
	if r.resp.StatusCode != 502 {
		t.Fatalf("host without VeNCrypt: %d, want 502", r.resp.StatusCode)
	}
	if m := metricsText(only); !strings.Contains(m, `consoleproxy_sessions_total{result="rfb_failed"} 1`) {
		t.Fatalf("no rfb_failed in\n%s", grepLines(m, "rfb_failed"))
	}
}

// vencryptHost is an RFB 3.8 server offering VeNCrypt X509None only, with
// the server certificate of k, requiring a client certificate from k's CA;
// after TLS it sends SecurityResult result and echoes.
func vencryptHost(t testing.TB, k *serverPKI, result byte) func(*backend, net.Conn) {
	return vencryptServe(t, k, result, func(_ *backend, tc *tls.Conn) { copyPlain(tc, tc) })
}

// vencryptServe is vencryptHost with then in place of the echo, over TLS.
func vencryptServe(t testing.TB, k *serverPKI, result byte, then func(*backend, *tls.Conn)) func(*backend, net.Conn) {
	cert, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: k.pool, ClientAuth: tls.RequireAndVerifyClientCert}
	return func(b *backend, c net.Conn) {
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		buf := make([]byte, 12)
		steps := []struct {
			send []byte
			read int
		}{
			{[]byte("RFB 003.008\n"), 12}, // versions
			{[]byte{1, 19}, 1},            // security types: VeNCrypt; the choice
			{[]byte{0, 2}, 2},             // VeNCrypt 0.2 both ways
			{[]byte{0, 1, 0, 0, 1, 4}, 4}, // version ok; one subtype, X509None; the choice
			{[]byte{1}, 0},                // subtype accepted
		}
		for _, s := range steps {
			if _, err := c.Write(s.send); err != nil {
				return
			}
			if _, err := io.ReadFull(c, buf[:s.read]); err != nil {
				return
			}
		}
		tc := tls.Server(c, cfg)
		if err := tc.Handshake(); err != nil {
			return
		}
		if _, err := tc.Write([]byte{0, 0, 0, result}); err != nil {
			return
		}
		_ = c.SetDeadline(time.Time{})
		then(b, tc)
	}
}

// VeNCrypt toward a Go TLS server: a session works when the certificate
// chains to --vencrypt-ca-certs and names the token's host; otherwise the
// client gets 502 vencrypt_failed before any upgrade, with the cause named
// in the log: an unknown authority, a certificate for another name (unless
// the name check is skipped, as Nova does), no client certificate (TLS 1.3
// reports that only after the handshake: the proxy reads the host's
// SecurityResult before the 101 to see it). A failed SecurityResult is 502
// rfb_failed.
func TestVeNCryptTLSChecks(t *testing.T) {
	k := newPKI(t)
	good := startBackend(t, vencryptHost(t, k, 0))
	refusing := startBackend(t, vencryptHost(t, k, 1))
	proxyWith := func(cfg rfb.Config) *proxy {
		cfg.Schemes = []rfb.Scheme{rfb.SchemeVeNCrypt}
		sp, err := rfb.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return startProxy(t, func(c *loop.Config) { c.Security = sp })
	}
	full := rfb.Config{CAFile: k.caFile, CertFile: k.clientFile, KeyFile: k.clientKeyFile}

	p := proxyWith(full)
	c := open(t, p.addr, req{protocol: "binary", token: p.mint(good.port(), nil)})
	rfbAnswer(t, c, "ping")
	if r := c.readData(4); string(r) != "ping" {
		t.Fatalf("echo through TLS: %q", r)
	}

	other := newPKI(t)
	skip := full
	skip.SkipHostname = true
	noClient := full
	noClient.CertFile, noClient.KeyFile = "", ""
	for _, tc := range []struct {
		name   string
		cfg    rfb.Config
		host   string
		port   int
		result string
		reason string
	}{
		{"unknown authority", rfb.Config{CAFile: other.caFile, CertFile: k.clientFile, KeyFile: k.clientKeyFile},
			"127.0.0.1", good.port(), "vencrypt_failed", "unknown authority"},
		{"another name", full, "localhost", good.port(), "vencrypt_failed", "does not name"},
		{"no client certificate", noClient, "127.0.0.1", good.port(), "vencrypt_failed", "refused the TLS handshake"},
		{"SecurityResult failed", full, "127.0.0.1", refusing.port(), "rfb_failed", "SecurityResult is a failure"},
		{"name not checked, another CA", rfb.Config{CAFile: other.caFile, CertFile: k.clientFile,
			KeyFile: k.clientKeyFile, SkipHostname: true}, "localhost", good.port(), "vencrypt_failed", "unknown authority"},
	} {
		p := proxyWith(tc.cfg)
		r := dial(t, p.addr, req{protocol: "binary", token: p.mint(tc.port, func(r *record) { r.Host = tc.host })})
		if r.resp.StatusCode != 502 {
			t.Errorf("%s: %d, want 502", tc.name, r.resp.StatusCode)
			continue
		}
		if m := metricsText(p); !strings.Contains(m, `consoleproxy_sessions_total{result="`+tc.result+`"} 1`) {
			t.Errorf("%s: no %s in\n%s", tc.name, tc.result, grepLines(m, "consoleproxy_sessions_total"))
		}
		if logs := p.logs.String(); !strings.Contains(logs, tc.reason) {
			t.Errorf("%s: log lacks %q:\n%s", tc.name, tc.reason, logs)
		}
	}

	ps := proxyWith(skip)
	c = open(t, ps.addr, req{protocol: "binary", token: ps.mint(good.port(), func(r *record) { r.Host = "localhost" })})
	rfbAnswer(t, c, "pong")
	if r := c.readData(4); string(r) != "pong" {
		t.Fatalf("--vencrypt-skip-hostname: %q", r)
	}
}

// BenchmarkSecurityProxyHandshake measures what the security proxy adds to
// a handshake (upgrade, lookup, dial, the host's RFB security handshake,
// 101), one client at a time, against the same proxy without it, in the
// same run: "passthrough" (no security proxy, an echo host), "none" (the
// proxy speaks RFB with the host: versions, types, SecurityResult) and
// "vencrypt" (the same plus VeNCrypt and a TLS 1.3 handshake with client
// certificates, ECDSA P-256, both ends on this machine). Compare the
// medians.
func BenchmarkSecurityProxyHandshake(b *testing.B) {
	k := newPKI(b)
	sec := func(schemes ...rfb.Scheme) func(*loop.Config) {
		sp, err := rfb.New(rfb.Config{Schemes: schemes, CAFile: k.caFile,
			CertFile: k.clientFile, KeyFile: k.clientKeyFile})
		if err != nil {
			b.Fatal(err)
		}
		return func(cfg *loop.Config) {
			cfg.Security = sp
			cfg.Reuse = reuse.NewLocalGuard(reuse.Shared, time.Now)
		}
	}
	shared := func(cfg *loop.Config) { cfg.Reuse = reuse.NewLocalGuard(reuse.Shared, time.Now) }
	for _, tc := range []struct {
		name string
		host func(*backend, net.Conn)
		cfg  func(*loop.Config)
	}{
		{"passthrough", echo, shared},
		{"none", rfbPlainHost([]byte{1}, nil), sec(rfb.SchemeVeNCrypt, rfb.SchemeNone)},
		{"vencrypt", vencryptHost(b, k, 0), sec(rfb.SchemeVeNCrypt)},
	} {
		back := startBackend(b, tc.host)
		p := startProxy(b, tc.cfg)
		token := p.mint(back.port(), nil)
		b.Run(tc.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if err := handshake(p.addr, token); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// SIGHUP re-reads the VeNCrypt files of the real binary: a compute host
// whose certificate the configured CA did not sign is refused (502) until
// the CA file names its CA and the proxy gets SIGHUP; then sessions go
// through.
func TestVeNCryptSIGHUP(t *testing.T) {
	old, hostPKI := newPKI(t), newPKI(t)
	host := startBackend(t, vencryptHost(t, hostPKI, 0))
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	copyFile(t, old.caFile, caFile)
	p := startBinary(t, []string{tokenLine("sighup-vencrypt", host.port())},
		"--vnc-auth-schemes", "vencrypt", "--vencrypt-ca-certs", caFile,
		"--vencrypt-client-cert", hostPKI.clientFile, "--vencrypt-client-key", hostPKI.clientKeyFile)
	if r := dial(t, p.addr, req{protocol: "binary", token: "sighup-vencrypt"}); r.resp.StatusCode != 502 {
		t.Fatalf("host certificate from another CA: %d, want 502", r.resp.StatusCode)
	}
	copyFile(t, hostPKI.caFile, caFile)
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	var c *wsClient
	testutil.WaitFor(t, "the rotated CA after SIGHUP", func() bool {
		if r := dial(t, p.addr, req{protocol: "binary", token: "sighup-vencrypt"}); r.resp.StatusCode == 101 {
			c = r
		}
		return c != nil
	})
	rfbAnswer(t, c, "after")
	if got := c.readData(5); string(got) != "after" {
		t.Fatalf("echo through the rotated TLS: %q", got)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Behind internal_access_path the host's RFB version comes in the same read
// as the CONNECT answer: the security proxy takes it from there, and the
// session works as without the CONNECT.
func TestRFBSecurityProxyAfterConnect(t *testing.T) {
	requests := make(chan string, 1)
	host := startBackend(t, connectEndpoint(requests, func(c net.Conn, br *bufio.Reader) {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\nRFB 003.008\n")
		hs := make([]byte, 12+1)
		if _, err := io.ReadFull(br, hs[:12]); err != nil {
			return
		}
		_, _ = c.Write([]byte{1, 1})
		if _, err := io.ReadFull(br, hs[12:]); err != nil || string(hs) != "RFB 003.008\n\x01" {
			return
		}
		_, _ = c.Write([]byte{0, 0, 0, 0})
		copyPlain(c, br)
	}))
	p := startProxy(t, withSecurity(t, rfb.SchemeVeNCrypt, rfb.SchemeNone))
	path := "/console?token=inner"
	c := open(t, p.addr, req{protocol: "binary", token: p.mint(host.port(), func(r *record) { r.InternalAccessPath = &path })})
	if got := <-requests; !strings.HasPrefix(got, "CONNECT /console?token=inner HTTP/1.1\r\n") {
		t.Fatalf("request %q", got)
	}
	rfbAnswer(t, c, "through")
	if got := c.readData(7); string(got) != "through" {
		t.Fatalf("echo %q", got)
	}
}
