package e2e

import (
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/internal/testutil/pki"
	"github.com/consoleproxy/consoleproxy/loop"
	"github.com/consoleproxy/consoleproxy/relay/rfb"
)

// Nova's RFB security proxy against QEMU's own VNC server: with VeNCrypt
// configured the proxy does QEMU's security handshake (X509None: TLS with
// certificates both ways) up to QEMU's SecurityResult, and poses to the
// client as a server offering security type None, whose SecurityResult is
// OK; QEMU's ServerInit then comes through unchanged.

// The proxy's side of the client's handshake, each a message of its own
// after the client's answer to the one before: RFB 3.8, security type None
// alone, SecurityResult OK.
const (
	vncVersion = "RFB 003.008\n"
	vncTypes   = "\x01\x01"
	vncResult  = "\x00\x00\x00\x00"
)

// vncName is QEMU's -name; its VNC server calls itself "QEMU (<name>)" in
// ServerInit.
const vncName = "vencrypt-test"

// startVNCQEMU starts QEMU with a VNC server on 127.0.0.1 (vncOpts
// appended to -vnc's argument, extra before it) and returns its port once
// it answers with RFB 3.8.
func startVNCQEMU(t *testing.T, vncOpts string, extra ...string) int {
	t.Helper()
	port := testutil.FreePort(t)
	for port < 5900 {
		port = testutil.FreePort(t)
	}
	args := append([]string{"-name", vncName, "-serial", "none"}, extra...)
	args = append(args, "-vnc", "127.0.0.1:"+strconv.Itoa(port-5900)+vncOpts)
	startQEMU(t, false, args...)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	err := testutil.CheckWithin(qemuWait, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(qemuWait))
		var v [12]byte
		if _, err := io.ReadFull(c, v[:]); err != nil {
			return err
		}
		if string(v[:]) != "RFB 003.008\n" {
			t.Fatalf("QEMU's VNC port says %q", v)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("QEMU's VNC port %d did not answer (%v); try qemu-system-x86_64 by hand with %q", port, err, args)
	}
	return port
}

// rfbStream reads a client's console bytes across WebSocket messages.
type rfbStream struct {
	c   *wsClient
	buf []byte
}

func (s *rfbStream) need(n int) []byte {
	s.c.t.Helper()
	for len(s.buf) < n {
		s.buf = append(s.buf, s.c.readData(1)...)
	}
	out := s.buf[:n]
	s.buf = s.buf[n:]
	return out
}

// vncClient is an RFB 3.8 client through the proxy: it takes the proxy's
// handshake (RFB 3.8, security type None only, SecurityResult OK) and
// answers with its version and None, step by step as noVNC does, or all at
// once with ClientInit (split false); then it reads QEMU's ServerInit.
func vncClient(t *testing.T, c *wsClient, split bool) {
	t.Helper()
	_ = c.conn.SetDeadline(time.Now().Add(qemuWait))
	s := &rfbStream{c: c}
	want := func(what, msg string) {
		t.Helper()
		if g := s.need(len(msg)); string(g) != msg {
			t.Fatalf("%s %q, want %q", what, g, msg)
		}
	}
	want("version", vncVersion)
	if split {
		c.send(ws.OpBinary, []byte(vncVersion))
		want("security types", vncTypes)
		c.send(ws.OpBinary, []byte{1})
		want("SecurityResult", vncResult)
		c.send(ws.OpBinary, []byte{1}) // ClientInit, shared
	} else {
		c.send(ws.OpBinary, []byte(vncVersion+"\x01\x01"))
		want("security types", vncTypes)
		want("SecurityResult", vncResult)
	}
	init := s.need(24) // RFC 6143 §7.3.2
	width, height := binary.BigEndian.Uint16(init[0:]), binary.BigEndian.Uint16(init[2:])
	name := string(s.need(int(binary.BigEndian.Uint32(init[20:]))))
	t.Logf("ServerInit: %d×%d, %d bpp, %q", width, height, init[4], name)
	if width == 0 || height == 0 {
		t.Errorf("ServerInit: %d×%d", width, height)
	}
	if want := "QEMU (" + vncName + ")"; name != want {
		t.Errorf("ServerInit name %q, want %q", name, want)
	}
	if bpp := init[4]; bpp != 8 && bpp != 16 && bpp != 32 {
		t.Errorf("ServerInit: %d bits per pixel", bpp)
	}
}

// vncProxy starts a proxy with the security proxy for cfg.
func vncProxy(t *testing.T, cfg rfb.Config) *proxy {
	t.Helper()
	sp, err := rfb.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sp == nil {
		t.Fatalf("%+v: no security proxy", cfg)
	}
	return startProxy(t, func(cfg *loop.Config) { cfg.Security = sp })
}

// refused requires a 502 with result for one upgrade, counted and logged
// with reason.
func refused(t *testing.T, p *proxy, port int, result, reason string) {
	t.Helper()
	uuid := fmt.Sprintf("6f1d7c2e-0000-4000-8000-%012d", port)
	r := dial(t, p.addr, req{protocol: "binary", token: p.mint(port, func(r *record) { r.InstanceUUID = uuid })})
	if r.resp.StatusCode != 502 {
		t.Fatalf("status %d, want 502 (%s)", r.resp.StatusCode, result)
	}
	var line string // logged before the answer was written
	for _, l := range strings.Split(p.logs.String(), "\n") {
		if strings.Contains(l, uuid) && strings.Contains(l, `"result":`) {
			line = l
		}
	}
	if !strings.Contains(line, `"result":"`+result+`"`) || !strings.Contains(line, reason) {
		t.Errorf("logged %s, want result %s and %q", line, result, reason)
	}
	if m := metricsText(p); !strings.Contains(m, `consoleproxy_sessions_total{result="`+result+`"} 1`) {
		t.Errorf("%s not counted:\n%s", result, grepLines(m, "sessions_total"))
	}
}

// startTLSVNCQEMU starts QEMU with an X.509 VNC server (tls-creds-x509,
// verify-peer=on: it offers VeNCrypt X509None alone and requires a client
// certificate from its CA) for 127.0.0.1; it returns the port, the CA and
// a client certificate the CA issued.
func startTLSVNCQEMU(t *testing.T) (int, *pki.CA, pki.Leaf) {
	t.Helper()
	// QEMU's tls-creds-x509 wants these file names in its dir.
	ca := pki.NewCA(t, "compute CA")
	qdir := t.TempDir()
	ca.WriteCert(t, filepath.Join(qdir, "ca-cert.pem"))
	ca.Issue(t, "compute-1", x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")}).
		WriteTo(t, filepath.Join(qdir, "server-cert.pem"), filepath.Join(qdir, "server-key.pem"))
	client := ca.Issue(t, "consoleproxy", x509.ExtKeyUsageClientAuth, nil)
	port := startVNCQEMU(t, ",tls-creds=tls0",
		"-object", "tls-creds-x509,id=tls0,dir="+qdir+",endpoint=server,verify-peer=on")
	return port, ca, client
}

// QEMU's X.509 VNC server behind the security proxy.
func TestVeNCryptQEMU(t *testing.T) {
	port, ca, client := startTLSVNCQEMU(t)
	good := rfb.Config{Schemes: []rfb.Scheme{rfb.SchemeVeNCrypt}, CAFile: ca.File, CertFile: client.CertFile, KeyFile: client.KeyFile}

	t.Run("session", func(t *testing.T) {
		p := vncProxy(t, good)
		vncClient(t, open(t, p.addr, req{protocol: "binary", token: p.mint(port, nil)}), false)
		vncClient(t, open(t, p.addr, req{protocol: "binary", token: p.mint(port, nil)}), true)
		if !strings.Contains(metricsText(p), `consoleproxy_sessions_total{result="ok"} 2`) {
			t.Errorf("sessions not counted ok:\n%s", grepLines(metricsText(p), "sessions_total"))
		}
	})

	// A client that does not answer RFB 3.8 with None is closed with 1008;
	// nothing of QEMU's reaches it (no ServerInit for the ClientInit sent
	// along).
	t.Run("client answers RFB 3.7", func(t *testing.T) {
		p := vncProxy(t, good)
		c := open(t, p.addr, req{protocol: "binary", token: p.mint(port, nil)})
		_ = c.conn.SetDeadline(time.Now().Add(qemuWait))
		s := &rfbStream{c: c}
		if g := s.need(len(vncVersion)); string(g) != vncVersion {
			t.Fatalf("version %q", g)
		}
		c.send(ws.OpBinary, []byte("RFB 003.007\n\x01\x01"))
		code, data := c.expectClose()
		if code != ws.StatusPolicyViolation {
			t.Errorf("close code %d, want 1008", code)
		}
		if len(s.buf) != 0 || len(data) != 0 {
			t.Errorf("after the greeting the client got %q", append(s.buf, data...))
		}
	})

	t.Run("the proxy's CA did not sign QEMU's certificate", func(t *testing.T) {
		cfg := good
		cfg.CAFile = pki.NewCA(t, "other CA").File
		refused(t, vncProxy(t, cfg), port, "vencrypt_failed", "unknown authority")
	})

	// QEMU 7.2 (GnuTLS) checks the client's certificate after the TLS
	// handshake and, when it fails, closes the socket without an alert;
	// under TLS 1.3 the proxy's side of the handshake is over by then, so
	// the close comes in place of the SecurityResult. It is still TLS
	// that failed, and the client is not upgraded.
	t.Run("QEMU does not trust the proxy's client certificate", func(t *testing.T) {
		stranger := pki.NewCA(t, "other CA").Issue(t, "consoleproxy", x509.ExtKeyUsageClientAuth, nil)
		cfg := good
		cfg.CertFile, cfg.KeyFile = stranger.CertFile, stranger.KeyFile
		refused(t, vncProxy(t, cfg), port, "vencrypt_failed", "")
	})
}

// QEMU without TLS offers None: the proxy may use it only if none is among
// the schemes.
func TestVeNCryptQEMUWithoutTLS(t *testing.T) {
	port := startVNCQEMU(t, "")
	caFile := pki.NewCA(t, "compute CA").File

	t.Run("vencrypt alone", func(t *testing.T) {
		p := vncProxy(t, rfb.Config{Schemes: []rfb.Scheme{rfb.SchemeVeNCrypt}, CAFile: caFile})
		refused(t, p, port, "rfb_failed", rfb.ErrRFBNoScheme.Error())
	})
	t.Run("vencrypt, then none", func(t *testing.T) {
		p := vncProxy(t, rfb.Config{Schemes: []rfb.Scheme{rfb.SchemeVeNCrypt, rfb.SchemeNone}, CAFile: caFile})
		vncClient(t, open(t, p.addr, req{protocol: "binary", token: p.mint(port, nil)}), false)
	})
}
