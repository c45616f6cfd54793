package rfb

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/consoleproxy/consoleproxy/internal/testutil/pki"
)

// rfbHangGuard bounds every socket operation of these tests: a proxy that
// waits for a byte the fake host never sends fails instead of hanging.
const rfbHangGuard = 10 * time.Second

var loopback = []net.IP{net.ParseIP("127.0.0.1")}

// step is one move of a fake compute host: bytes it sends, or bytes it
// requires the proxy to have sent next.
type step struct{ send, expect string }

func send(s string) step   { return step{send: s} }
func expect(s string) step { return step{expect: s} }

// u32s is RFB's big-endian encoding of VeNCrypt subtypes.
func u32s(v ...uint32) string {
	var b []byte
	for _, x := range v {
		b = binary.BigEndian.AppendUint32(b, x)
	}
	return string(b)
}

// rfbHost is a fake compute host on a real loopback socket: it accepts
// one connection, plays its script, runs then (the TLS part) if set, and
// else half-closes and keeps what else the proxy wrote until the proxy
// closes.
type rfbHost struct {
	addr string
	done chan rfbHostResult
}

type rfbHostResult struct {
	err   error  // the script was not followed, or then failed
	extra []byte // what the proxy wrote after the script
}

func startRFBHost(t *testing.T, script []step, then func(net.Conn) error) *rfbHost {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	h := &rfbHost{addr: ln.Addr().String(), done: make(chan rfbHostResult, 1)}
	go func() {
		c, err := ln.Accept()
		ln.Close()
		if err != nil {
			h.done <- rfbHostResult{err: err}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(rfbHangGuard))
		h.done <- playRFB(c, script, then)
	}()
	return h
}

func playRFB(c net.Conn, script []step, then func(net.Conn) error) rfbHostResult {
	for i, s := range script {
		if s.send != "" {
			if _, err := io.WriteString(c, s.send); err != nil {
				return rfbHostResult{err: fmt.Errorf("step %d: send: %w", i, err)}
			}
			continue
		}
		got := make([]byte, len(s.expect))
		if n, err := io.ReadFull(c, got); err != nil {
			return rfbHostResult{err: fmt.Errorf("step %d: want %q from the proxy, got %q: %w", i, s.expect, got[:n], err)}
		}
		if string(got) != s.expect {
			return rfbHostResult{err: fmt.Errorf("step %d: want %q from the proxy, got %q", i, s.expect, got)}
		}
	}
	if then != nil {
		return rfbHostResult{err: then(c)}
	}
	_ = c.(*net.TCPConn).CloseWrite()
	extra, err := io.ReadAll(c)
	if errors.Is(err, syscall.ECONNRESET) {
		err = nil // the proxy closed with the rest of the host's bytes unread
	}
	return rfbHostResult{extra: extra, err: err}
}

func (h *rfbHost) wait(t *testing.T) rfbHostResult {
	t.Helper()
	select {
	case r := <-h.done:
		return r
	case <-time.After(2 * rfbHangGuard):
		t.Fatal("the fake host never finished")
		return rfbHostResult{}
	}
}

func dialRFB(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, rfbHangGuard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(rfbHangGuard))
	return c
}

func newTestProxy(t testing.TB, cfg Config) *Proxy {
	t.Helper()
	sp, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sp == nil {
		t.Fatalf("New(%+v): nil proxy", cfg)
	}
	return sp
}

// negotiateErrors are the errors of the RFB part of the handshake, before
// TLS, and of the SecurityResult.
var negotiateErrors = []error{ErrRFBVersion, ErrRFBRefused, ErrRFBNoScheme, ErrVeNCrypt, ErrRFBClosed, ErrRFBAuthFailed}

// The compute side of the handshake against fake hosts: each refusal has
// its error, the proxy writes exactly the bytes RFB 3.8 and VeNCrypt 0.2
// call for (and a 0 when it gives up on the security types), and nothing
// after; no error shows the host's reason strings.
func TestRFBNegotiate(t *testing.T) {
	ca := pki.NewCA(t, "compute CA")
	const v, ok = rfbVersion, "\x00\x00\x00\x00"
	vv := []Scheme{SchemeVeNCrypt}
	vn := []Scheme{SchemeVeNCrypt, SchemeNone}
	nv := []Scheme{SchemeNone, SchemeVeNCrypt}
	// upTo is the exchange of a host offering VeNCrypt alone, up to the
	// proxy's choice of X509None.
	upToSubtype := []step{send(v), expect(v), send("\x01\x13"), expect("\x13"), send("\x00\x02"), expect("\x00\x02"),
		send("\x00\x01" + u32s(vencryptX509None)), expect(u32s(vencryptX509None))}
	tests := []struct {
		name    string
		schemes []Scheme
		script  []step
		want    error  // nil: success
		scheme  Scheme // on success
		tlsNext bool   // the proxy goes on with a TLS ClientHello
	}{
		{"RFB 3.3", vv, []step{send("RFB 003.003\n")}, ErrRFBVersion, "", false},
		{"RFB 3.7", vv, []step{send("RFB 003.007\n")}, ErrRFBVersion, "", false},
		{"Apple's RFB 3.889", vv, []step{send("RFB 003.889\n")}, ErrRFBVersion, "", false},
		{"not RFB", vn, []step{send("SSH-2.0-OpenSSH_9.2\r\n")}, ErrRFBVersion, "", false},
		{"no security types, with a reason", vn, []step{send(v), expect(v), send("\x00\x00\x00\x00\x0esecret-reason!")}, ErrRFBRefused, "", false},
		{"no security types, closed before the reason", vn, []step{send(v), expect(v), send("\x00")}, ErrRFBRefused, "", false},
		{"VNC auth only", vv, []step{send(v), expect(v), send("\x01\x02"), expect("\x00")}, ErrRFBNoScheme, "", false},
		{"None only, vencrypt configured", vv, []step{send(v), expect(v), send("\x01\x01"), expect("\x00")}, ErrRFBNoScheme, "", false},
		{"VNC auth and Tight, vencrypt and none configured", vn, []step{send(v), expect(v), send("\x02\x02\x10"), expect("\x00")}, ErrRFBNoScheme, "", false},
		{"None, vencrypt preferred", vn, []step{send(v), expect(v), send("\x01\x01"), expect("\x01"), send(ok)}, nil, SchemeNone, false},
		{"VeNCrypt and None, none preferred", nv, []step{send(v), expect(v), send("\x02\x13\x01"), expect("\x01"), send(ok)}, nil, SchemeNone, false},
		{"SecurityResult failed, with a reason", vn, []step{send(v), expect(v), send("\x01\x01"), expect("\x01"),
			send("\x00\x00\x00\x01\x00\x00\x00\x0esecret-reason!")}, ErrRFBAuthFailed, "", false},
		{"SecurityResult 2", vn, []step{send(v), expect(v), send("\x01\x01"), expect("\x01"), send("\x00\x00\x00\x02")}, ErrRFBAuthFailed, "", false},
		{"SecurityResult 0x01000000", vn, []step{send(v), expect(v), send("\x01\x01"), expect("\x01"), send("\x01\x00\x00\x00")}, ErrRFBAuthFailed, "", false},
		{"VeNCrypt 0.1", vv, []step{send(v), expect(v), send("\x01\x13"), expect("\x13"), send("\x00\x01")}, ErrVeNCrypt, "", false},
		{"VeNCrypt 1.0", vv, []step{send(v), expect(v), send("\x01\x13"), expect("\x13"), send("\x01\x00")}, ErrVeNCrypt, "", false},
		{"the host rejects VeNCrypt 0.2", vv, []step{send(v), expect(v), send("\x01\x13"), expect("\x13"), send("\x00\x02"), expect("\x00\x02"), send("\x01")}, ErrVeNCrypt, "", false},
		{"subtypes without X509None", vv, []step{send(v), expect(v), send("\x01\x13"), expect("\x13"), send("\x00\x02"), expect("\x00\x02"),
			send("\x00\x04" + u32s(2, 256, 257, 262))}, ErrVeNCrypt, "", false},
		{"no subtypes", vv, []step{send(v), expect(v), send("\x01\x13"), expect("\x13"), send("\x00\x02"), expect("\x00\x02"), send("\x00\x00")}, ErrVeNCrypt, "", false},
		{"X509None accepted with 0", vv, append(upToSubtype[:6:6], send("\x00\x03"+u32s(257, 260, 262)), expect(u32s(260)), send("\x00")), ErrVeNCrypt, "", false},
		{"X509None accepted with 2", vv, append(upToSubtype, send("\x02")), ErrVeNCrypt, "", false},
		{"closed at once", vv, nil, ErrRFBClosed, "", false},
		{"closed in the version", vv, []step{send("RFB 003")}, ErrRFBClosed, "", false},
		{"closed before the security types", vv, []step{send(v), expect(v)}, ErrRFBClosed, "", false},
		{"closed in the security types", vv, []step{send(v), expect(v), send("\x03\x13\x01")}, ErrRFBClosed, "", false},
		{"closed in the VeNCrypt version", vv, []step{send(v), expect(v), send("\x01\x13"), expect("\x13"), send("\x00")}, ErrRFBClosed, "", false},
		{"closed before the subtypes", vv, []step{send(v), expect(v), send("\x01\x13"), expect("\x13"), send("\x00\x02"), expect("\x00\x02"), send("\x00")}, ErrRFBClosed, "", false},
		{"closed in the subtypes", vv, []step{send(v), expect(v), send("\x01\x13"), expect("\x13"), send("\x00\x02"), expect("\x00\x02"), send("\x00\x02\x00\x00\x01\x04\x00")}, ErrRFBClosed, "", false},
		{"closed before the subtype's acceptance", vv, upToSubtype, ErrRFBClosed, "", false},
		{"closed before TLS", vv, append(upToSubtype, send("\x01")), ErrVeNCryptTLS, "", true},
		{"closed before the SecurityResult", vn, []step{send(v), expect(v), send("\x01\x01"), expect("\x01")}, ErrRFBClosed, "", false},
		{"closed in the SecurityResult", vn, []step{send(v), expect(v), send("\x01\x01"), expect("\x01"), send("\x00\x00\x00")}, ErrRFBClosed, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sp := newTestProxy(t, Config{Schemes: tc.schemes, CAFile: ca.File})
			h := startRFBHost(t, tc.script, nil)
			c := dialRFB(t, h.addr)
			ctx, cancel := context.WithTimeout(context.Background(), rfbHangGuard)
			defer cancel()
			got, scheme, err := sp.Negotiate(ctx, c, "127.0.0.1")
			if tc.want == nil {
				if err != nil || scheme != tc.scheme {
					t.Fatalf("got %q, %v; want %q", scheme, err, tc.scheme)
				}
				if got != c {
					t.Errorf("scheme none: got conn %T %p, want the conn itself", got, got)
				}
			} else {
				if !errors.Is(err, tc.want) {
					t.Fatalf("got %q, %v; want %v", scheme, err, tc.want)
				}
				if got != nil {
					t.Errorf("a conn (%T) with the error", got)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("the error shows the host's reason: %v", err)
				}
			}
			c.Close()
			r := h.wait(t)
			if r.err != nil {
				t.Fatalf("the host's script: %v", r.err)
			}
			if tc.tlsNext {
				if len(r.extra) < 5 || r.extra[0] != 22 { // a TLS handshake record
					t.Errorf("after X509None was accepted the proxy wrote %q, want a TLS ClientHello", r.extra)
				}
			} else if len(r.extra) != 0 {
				t.Errorf("the proxy wrote %q after the script", r.extra)
			}
		})
	}
}

// With None chosen the conn comes back as it is, and nothing after the
// host's SecurityResult was read: what the host sent after it, in the same
// segment as its whole handshake, is the next thing read from it.
func TestRFBNoneLeavesServerInit(t *testing.T) {
	ca := pki.NewCA(t, "compute CA")
	sp := newTestProxy(t, Config{Schemes: []Scheme{SchemeVeNCrypt, SchemeNone}, CAFile: ca.File})
	h := startRFBHost(t, []step{send(rfbVersion + "\x01\x01" + "\x00\x00\x00\x00" + "ServerInit"), expect(rfbVersion + "\x01")}, nil)
	c := dialRFB(t, h.addr)
	got, scheme, err := sp.Negotiate(context.Background(), c, "127.0.0.1")
	if err != nil || scheme != SchemeNone {
		t.Fatalf("got %q, %v; want none", scheme, err)
	}
	if got != c {
		t.Fatalf("got conn %T, want the conn itself", got)
	}
	rest, err := io.ReadAll(got) // the host half-closes after its script
	if err != nil {
		t.Fatal(err)
	}
	if string(rest) != "ServerInit" {
		t.Fatalf("after the handshake the conn reads %q, want what follows the SecurityResult", rest)
	}
	c.Close()
	if r := h.wait(t); r.err != nil || len(r.extra) != 0 {
		t.Fatalf("host: %v, extra %q", r.err, r.extra)
	}
}

// vencryptHost is a compute host offering None and VeNCrypt (None first:
// the proxy's preference decides) that does X509None with a real TLS
// server handshake, requiring and verifying a client certificate from
// clients, then sends result (a SecurityResult) and "ServerInit" over TLS
// in one record.
func vencryptHost(t *testing.T, cert tls.Certificate, clients *x509.CertPool, peer chan<- string, result string) *rfbHost {
	const v = rfbVersion
	script := []step{send(v), expect(v), send("\x02\x01\x13"), expect("\x13"), send("\x00\x02"), expect("\x00\x02"),
		send("\x00\x02" + u32s(257, 260)), expect(u32s(260)), send("\x01")}
	return startRFBHost(t, script, func(c net.Conn) error {
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: clients, ClientAuth: tls.RequireAndVerifyClientCert})
		if err := tc.Handshake(); err != nil {
			return err
		}
		peer <- tc.ConnectionState().PeerCertificates[0].Subject.CommonName
		if _, err := io.WriteString(tc, result+"ServerInit"); err != nil {
			return err
		}
		_, err := io.Copy(io.Discard, tc) // until the proxy closes
		return err
	})
}

// X509None with certificates: the host's chain and name are checked (the
// name alone can be waived, never the chain), the proxy presents its
// client certificate, and reads the SecurityResult through TLS; what
// follows it is read from the returned TLS conn.
func TestRFBVeNCryptTLS(t *testing.T) {
	ca := pki.NewCA(t, "compute CA")
	other := pki.NewCA(t, "other CA")
	good := ca.Issue(t, "compute-1", x509.ExtKeyUsageServerAuth, loopback)
	wrongName := ca.Issue(t, "compute-2", x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("10.0.0.2")}, "compute-2.example")
	otherCA := other.Issue(t, "impostor", x509.ExtKeyUsageServerAuth, loopback)
	client := ca.Issue(t, "consoleproxy", x509.ExtKeyUsageClientAuth, nil)
	const ok = "\x00\x00\x00\x00"
	tests := []struct {
		name   string
		server pki.Leaf
		skip   bool
		result string
		want   error
	}{
		{"chain and name", good, false, ok, nil},
		{"chain and name, SkipHostname", good, true, ok, nil},
		{"another CA", otherCA, false, ok, ErrVeNCryptTLS},
		{"another CA, SkipHostname", otherCA, true, ok, ErrVeNCryptTLS},
		{"name not in the SAN", wrongName, false, ok, ErrVeNCryptTLS},
		{"name not in the SAN, SkipHostname", wrongName, true, ok, nil},
		{"SecurityResult failed", good, false, "\x00\x00\x00\x01", ErrRFBAuthFailed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sp := newTestProxy(t, Config{Schemes: []Scheme{SchemeVeNCrypt, SchemeNone}, CAFile: ca.File,
				CertFile: client.CertFile, KeyFile: client.KeyFile, SkipHostname: tc.skip})
			peer := make(chan string, 1)
			h := vencryptHost(t, tc.server.TLS, ca.Pool, peer, tc.result)
			c := dialRFB(t, h.addr)
			ctx, cancel := context.WithTimeout(context.Background(), rfbHangGuard)
			defer cancel()
			got, scheme, err := sp.Negotiate(ctx, c, "127.0.0.1")
			if tc.want != nil {
				if !errors.Is(err, tc.want) || got != nil {
					t.Fatalf("got %q, %v, %T; want %v and no conn", scheme, err, got, tc.want)
				}
				c.Close()
				h.wait(t)
				return
			}
			if err != nil || scheme != SchemeVeNCrypt {
				t.Fatalf("got %q, %v; want vencrypt", scheme, err)
			}
			tc2, ok := got.(*tls.Conn)
			if !ok {
				t.Fatalf("got a %T, want a *tls.Conn", got)
			}
			if cn := tc2.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != tc.server.TLS.Leaf.Subject.CommonName {
				t.Errorf("TLS with %q, want %q", cn, tc.server.TLS.Leaf.Subject.CommonName)
			}
			next := make([]byte, len("ServerInit"))
			if _, err := io.ReadFull(got, next); err != nil {
				t.Fatalf("reading through TLS: %v", err)
			}
			if string(next) != "ServerInit" {
				t.Fatalf("after the SecurityResult the TLS conn reads %q", next)
			}
			if cn := <-peer; cn != "consoleproxy" {
				t.Errorf("the host saw client certificate %q", cn)
			}
			got.Close()
			if r := h.wait(t); r.err != nil {
				t.Fatalf("host: %v", r.err)
			}
		})
	}
}

// A host that refuses the proxy's client certificate (another CA's, or
// none) fails the TLS step. Under TLS 1.3 the client's side of the
// handshake ends before the server has checked the client's certificate:
// the refusal comes in place of the SecurityResult, as an alert (crypto/tls,
// OpenSSL) or, as QEMU 7.2 with GnuTLS does, as a bare close of the socket
// once its check of the certificate failed.
func TestRFBVeNCryptClientCertRefused(t *testing.T) {
	ca := pki.NewCA(t, "compute CA")
	other := pki.NewCA(t, "other CA")
	server := ca.Issue(t, "compute-1", x509.ExtKeyUsageServerAuth, loopback)
	stranger := other.Issue(t, "consoleproxy", x509.ExtKeyUsageClientAuth, nil)
	withStranger := Config{Schemes: []Scheme{SchemeVeNCrypt}, CAFile: ca.File, CertFile: stranger.CertFile, KeyFile: stranger.KeyFile}
	// qemuLike completes the handshake whatever the client's certificate,
	// then checks it and closes without a word: no alert, no close_notify.
	qemuLike := func(t *testing.T) *rfbHost {
		const v = rfbVersion
		script := []step{send(v), expect(v), send("\x01\x13"), expect("\x13"), send("\x00\x02"), expect("\x00\x02"),
			send("\x00\x01" + u32s(260)), expect(u32s(260)), send("\x01")}
		return startRFBHost(t, script, func(c net.Conn) error {
			tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{server.TLS}, ClientAuth: tls.RequireAnyClientCert, SessionTicketsDisabled: true})
			if err := tc.Handshake(); err != nil {
				return err
			}
			if _, err := tc.ConnectionState().PeerCertificates[0].Verify(x509.VerifyOptions{Roots: ca.Pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
				return errors.New("the stranger's certificate verified")
			}
			return c.Close()
		})
	}
	alerting := func(t *testing.T) *rfbHost {
		return vencryptHost(t, server.TLS, ca.Pool, make(chan string, 1), "\x00\x00\x00\x00")
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		host func(*testing.T) *rfbHost
	}{
		{"another CA's, alert", withStranger, alerting},
		{"none, alert", Config{Schemes: []Scheme{SchemeVeNCrypt}, CAFile: ca.File}, alerting},
		{"another CA's, closed like QEMU", withStranger, qemuLike},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp := newTestProxy(t, tc.cfg)
			h := tc.host(t)
			c := dialRFB(t, h.addr)
			got, _, err := sp.Negotiate(context.Background(), c, "127.0.0.1")
			if !errors.Is(err, ErrVeNCryptTLS) || got != nil {
				t.Errorf("%v, %T; want ErrVeNCryptTLS and no conn", err, got)
			}
			c.Close()
			h.wait(t)
		})
	}
}

func TestParseSchemes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []Scheme
	}{
		{"none", []Scheme{SchemeNone}},
		{"vencrypt", []Scheme{SchemeVeNCrypt}},
		{" none , VeNCrypt", []Scheme{SchemeNone, SchemeVeNCrypt}},
		{"vencrypt,none", []Scheme{SchemeVeNCrypt, SchemeNone}},
		{"VENCRYPT, none,vencrypt ,NONE", []Scheme{SchemeVeNCrypt, SchemeNone}},
		{"none,,none,", []Scheme{SchemeNone}},
	} {
		got, err := ParseSchemes(tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseSchemes(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", " ", " , ", "vnc", "none,vnc", "vencrypt;none", "tls"} {
		if got, err := ParseSchemes(in); err == nil {
			t.Errorf("ParseSchemes(%q) = %q, want an error", in, got)
		}
	}
}

func TestNew(t *testing.T) {
	ca := pki.NewCA(t, "compute CA")
	client := ca.Issue(t, "consoleproxy", x509.ExtKeyUsageClientAuth, nil)
	for _, cfg := range []Config{{}, {Schemes: []Scheme{SchemeNone}}, {Schemes: []Scheme{SchemeNone}, CertFile: "/nonexistent"}} {
		if sp, err := New(cfg); sp != nil || err != nil {
			t.Errorf("%+v: %v, %v; want nil, nil (no security proxy)", cfg, sp, err)
		}
	}
	for _, cfg := range []Config{
		{Schemes: []Scheme{SchemeVeNCrypt}, CAFile: ca.File},
		{Schemes: []Scheme{SchemeNone, SchemeVeNCrypt}, CAFile: ca.File, CertFile: client.CertFile, KeyFile: client.KeyFile},
	} {
		if sp, err := New(cfg); sp == nil || err != nil {
			t.Errorf("%+v: %v, %v; want a proxy", cfg, sp, err)
		}
	}
	notPEM := filepath.Join(t.TempDir(), "not-pem.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing-ca.pem")
	unreadable := filepath.Join(t.TempDir(), "ca-dir.pem")
	if err := os.Mkdir(unreadable, 0o700); err != nil {
		t.Fatal(err)
	}
	vv := []Scheme{SchemeVeNCrypt}
	for _, tc := range []struct {
		name string
		cfg  Config
		says string // the error names this
	}{
		{"vencrypt without CA", Config{Schemes: vv}, "CA"},
		{"none,vencrypt without CA", Config{Schemes: []Scheme{SchemeNone, SchemeVeNCrypt}}, "CA"},
		{"certificate without key", Config{Schemes: vv, CAFile: ca.File, CertFile: client.CertFile}, "key"},
		{"key without certificate", Config{Schemes: vv, CAFile: ca.File, KeyFile: client.KeyFile}, "certificate"},
		{"missing CA file", Config{Schemes: vv, CAFile: missing}, missing},
		{"CA file is a directory", Config{Schemes: vv, CAFile: unreadable}, unreadable},
		{"CA file without PEM", Config{Schemes: vv, CAFile: notPEM}, notPEM},
		{"missing client certificate", Config{Schemes: vv, CAFile: ca.File, CertFile: missing, KeyFile: client.KeyFile}, missing},
		{"key of the wrong certificate", Config{Schemes: vv, CAFile: ca.File, CertFile: client.CertFile, KeyFile: ca.Issue(t, "x", x509.ExtKeyUsageClientAuth, nil).KeyFile}, client.CertFile},
	} {
		sp, err := New(tc.cfg)
		if err == nil || sp != nil {
			t.Errorf("%s: %v, %v; want an error", tc.name, sp, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %q does not name %q", tc.name, err, tc.says)
		}
	}
}

func TestCheckClient(t *testing.T) {
	if string(GreetVersion)+string(GreetTypes)+string(GreetResult) != "RFB 003.008\n\x01\x01\x00\x00\x00\x00" ||
		ClientVersionLen != 12 || ClientReplyLen != 13 {
		t.Fatalf("greeting %q %q %q, lengths %d %d", GreetVersion, GreetTypes, GreetResult, ClientVersionLen, ClientReplyLen)
	}
	if err := CheckClientVersion([]byte("RFB 003.008\n")); err != nil {
		t.Fatalf("RFB 3.8: %v", err)
	}
	for _, bad := range []string{"RFB 003.007\n", "RFB 003.003\n", "RFB 003.889\n", "RFB 003.008", "RFB 003.008\n\x01",
		"", "rfb 003.008\n", "RFB 003.008\r"} {
		if err := CheckClientVersion([]byte(bad)); !errors.Is(err, ErrRFBClientReply) {
			t.Errorf("CheckClientVersion(%q) = %v, want ErrRFBClientReply", bad, err)
		}
	}
	if err := CheckClientChoice(1); err != nil {
		t.Fatalf("None: %v", err)
	}
	for _, bad := range []byte{0, 2, 16, 19, 22, 255} {
		if err := CheckClientChoice(bad); !errors.Is(err, ErrRFBClientReply) {
			t.Errorf("CheckClientChoice(%d) = %v, want ErrRFBClientReply", bad, err)
		}
	}
}

// FuzzNegotiate plays arbitrary bytes as the compute host against a proxy
// preferring vencrypt over none, up to where TLS would start (and, with
// None, the SecurityResult). It must not panic; every error is one of the
// Err* values; and the proxy writes only what the protocol calls for and,
// on success, has read exactly the host's messages, none of what follows.
func FuzzNegotiate(f *testing.F) {
	const v = rfbVersion
	f.Add([]byte(v + "\x01\x01" + "\x00\x00\x00\x00" + "ServerInit"))
	f.Add([]byte(v + "\x01\x01" + "\x00\x00\x00\x01"))
	f.Add([]byte(v + "\x02\x01\x13" + "\x00\x02" + "\x00\x01" + u32s(260) + "\x01" + "\x16\x03\x03"))
	f.Add([]byte(v + "\x00\x00\x00\x00\x03bye"))
	f.Add([]byte(v + "\x01\x02"))
	f.Add([]byte(v + "\x01\x13\x00\x02\x00\x02" + u32s(256, 257)))
	f.Add([]byte("RFB 003.007\n\x01\x01"))
	ca := pki.NewCA(f, "compute CA")
	sp := newTestProxy(f, Config{Schemes: []Scheme{SchemeVeNCrypt, SchemeNone}, CAFile: ca.File})
	const wroteNone, wroteVeNCrypt, wroteGaveUp = v + "\x01", v + "\x13\x00\x02" + "\x00\x00\x01\x04", v + "\x00"
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		var w bytes.Buffer
		scheme, err := sp.negotiate(struct {
			io.Reader
			io.Writer
		}{r, &w})
		used, wrote := len(in)-r.Len(), w.String()
		if used > len(in) || used < 0 {
			t.Fatalf("consumed %d of %d bytes", used, len(in))
		}
		if !strings.HasPrefix(wroteNone, wrote) && !strings.HasPrefix(wroteVeNCrypt, wrote) && !strings.HasPrefix(wroteGaveUp, wrote) {
			t.Fatalf("the proxy wrote %q", wrote)
		}
		if err != nil {
			known := false
			for _, e := range negotiateErrors {
				known = known || errors.Is(err, e)
			}
			if !known {
				t.Fatalf("error %v (%T) is none of the Err* values", err, err)
			}
			if wrote == wroteNone || wrote == wroteVeNCrypt && !errors.Is(err, ErrVeNCrypt) && !errors.Is(err, ErrRFBClosed) {
				t.Fatalf("%v after writing %q", err, wrote)
			}
			return
		}
		// Success: exactly the host's messages were read.
		types := in[len(v)+1 : len(v)+1+int(in[len(v)])]
		want, wantWrote := len(v)+1+len(types), wroteNone
		if scheme == SchemeVeNCrypt {
			want += 2 + 1 + 1 + 4*int(in[want+3]) + 1
			wantWrote = wroteVeNCrypt
			if !bytes.Contains(types, []byte{rfbSecVeNCrypt}) {
				t.Fatalf("vencrypt chosen from types %x", types)
			}
		} else if scheme != SchemeNone || bytes.Contains(types, []byte{rfbSecVeNCrypt}) || !bytes.Contains(types, []byte{rfbSecNone}) {
			t.Fatalf("scheme %q chosen from types %x", scheme, types)
		}
		if used != want || wrote != wantWrote {
			t.Fatalf("scheme %q: read %d bytes, want %d; wrote %q, want %q", scheme, used, want, wrote, wantWrote)
		}
		if scheme != SchemeNone {
			return // TLS follows
		}
		// None: the SecurityResult is next, and only it is read.
		switch err := securityResult(r); {
		case err == nil || errors.Is(err, ErrRFBAuthFailed):
			if (err == nil) != (string(in[want:want+4]) == "\x00\x00\x00\x00") || r.Len() != len(in)-want-4 {
				t.Fatalf("SecurityResult %x: %v, %d bytes left of %d", in[want:want+4], err, r.Len(), len(in)-want)
			}
		case errors.Is(err, ErrRFBClosed):
			if len(in)-want >= 4 {
				t.Fatalf("closed with %d bytes left", len(in)-want)
			}
		default:
			t.Fatalf("SecurityResult: %v", err)
		}
	})
}

func TestRFBIsTLSAlert(t *testing.T) {
	alert := &net.OpError{Op: "remote error", Err: errors.New("tls: bad certificate")}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{alert, true},
		{fmt.Errorf("%w: %w", ErrVeNCryptTLS, alert), true},
		{tls.AlertError(42), true},
		{io.EOF, false},
		{ErrRFBClosed, false},
		{&net.OpError{Op: "read", Err: syscall.ECONNRESET}, false},
		{nil, false},
	} {
		if got := IsTLSAlert(tc.err); got != tc.want {
			t.Errorf("IsTLSAlert(%v) = %v", tc.err, got)
		}
	}
}

// Reload picks up rotated files for the next handshake: a proxy whose CA
// file now names another CA trusts that CA's hosts; files that no longer
// load leave the previous certificates in place.
func TestProxyReload(t *testing.T) {
	ca := pki.NewCA(t, "compute CA")
	next := pki.NewCA(t, "next compute CA")
	client := ca.Issue(t, "consoleproxy", x509.ExtKeyUsageClientAuth, nil)
	caFile := ca.WriteCert(t, filepath.Join(t.TempDir(), "ca.pem"))
	sp := newTestProxy(t, Config{Schemes: []Scheme{SchemeVeNCrypt}, CAFile: caFile,
		CertFile: client.CertFile, KeyFile: client.KeyFile})
	clients := x509.NewCertPool()
	clients.AddCert(ca.Cert)
	handshake := func(server pki.Leaf) error {
		t.Helper()
		h := vencryptHost(t, server.TLS, clients, make(chan string, 1), "\x00\x00\x00\x00")
		c := dialRFB(t, h.addr)
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), rfbHangGuard)
		defer cancel()
		got, _, err := sp.Negotiate(ctx, c, "127.0.0.1")
		if got != nil {
			got.Close()
		}
		h.wait(t)
		return err
	}
	rotated := next.Issue(t, "compute-1", x509.ExtKeyUsageServerAuth, loopback)
	if err := handshake(rotated); !errors.Is(err, ErrVeNCryptTLS) {
		t.Fatalf("before the rotation: %v, want ErrVeNCryptTLS", err)
	}
	next.WriteCert(t, caFile)
	if err := sp.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := handshake(rotated); err != nil {
		t.Fatalf("after Reload: %v", err)
	}
	if err := os.WriteFile(caFile, []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := sp.Reload(); err == nil || !strings.Contains(err.Error(), caFile) {
		t.Fatalf("Reload of a broken CA file: %v, want an error naming it", err)
	}
	if err := handshake(rotated); err != nil {
		t.Fatalf("after a failed Reload the previous CA must stay: %v", err)
	}
}
