package tlsrec

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
)

// Trim finds crypto/tls's read buffers in this Go release and lets them
// go once empty: a Go release that renames or retypes them fails here
// (trimming would be off and idle wss:// and VeNCrypt sessions hold ~3.5 KiB more).
func TestTrim(t *testing.T) {
	if !TrimOK() {
		t.Fatal("crypto/tls's rawInput, input or hand changed: Trim is off")
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
	if !Trim(server, 0) {
		t.Fatal("the handshake's buffers were not let go")
	}
	buf := make([]byte, 100)
	if _, err := server.Read(buf); err != nil {
		t.Fatal(err)
	}
	if Trim(server, 0) {
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
	if !Trim(server, 0) {
		t.Fatal("empty buffers were kept")
	}
}
