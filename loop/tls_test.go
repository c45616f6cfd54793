//go:build linux

package loop

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Where the kernel offers the tls ULP, a TCP socket takes it (what kTLS's
// TLS_TX/TLS_RX would be set on); elsewhere the test says why it cannot run.
func TestKernelTLS(t *testing.T) {
	ok, why := KernelTLS()
	if !ok {
		t.Skipf("kernel TLS not available: %s", why)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := sc.Control(func(fd uintptr) { serr = unix.SetsockoptString(int(fd), unix.SOL_TCP, unix.TCP_ULP, "tls") }); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatalf("tcp_available_ulp lists tls, yet setting it failed: %v", serr)
	}
}

// trimTLS finds crypto/tls's read buffers in this Go release and lets them
// go once empty: a Go release that renames or retypes them fails here
// (trimming would be off and idle wss:// sessions hold ~3.5 KiB more).
func TestTrimTLS(t *testing.T) {
	if !tlsTrimOK {
		t.Fatal("crypto/tls's rawInput, input or hand changed: trimTLS is off")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	server := tls.Server(a, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	client := tls.Client(b, &tls.Config{InsecureSkipVerify: true})
	go func() {
		_ = client.Handshake()
		_, _ = client.Write(bytes.Repeat([]byte("x"), 20000)) // several records
	}()
	if err := server.Handshake(); err != nil {
		t.Fatal(err)
	}
	if !trimTLS(server, 0) {
		t.Fatal("the handshake's buffers were not let go")
	}
	buf := make([]byte, 100)
	if _, err := server.Read(buf); err != nil {
		t.Fatal(err)
	}
	if trimTLS(server, 0) {
		t.Fatal("trimmed while decrypted bytes were waiting")
	}
	got := 100
	for got < 20000 {
		n, err := server.Read(make([]byte, 20000))
		if err != nil {
			t.Fatal(err)
		}
		got += n
	}
	if !trimTLS(server, 0) {
		t.Fatal("empty buffers were kept")
	}
}
