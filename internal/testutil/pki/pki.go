// Package pki is for tests only: it generates a CA and leaf
// certificates with crypto/x509 and writes them as PEM files.
//
// The certificates carry the key usages GnuTLS (QEMU's tls-creds-x509)
// checks for as well as what crypto/tls needs: the CA has CertSign, CRLSign
// and DigitalSignature, leaves DigitalSignature and KeyEncipherment with
// one extended key usage. Keys are ECDSA P-256, leaf keys written as
// PKCS#8 "PRIVATE KEY".
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a certificate authority valid from an hour ago until a day from now.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	Pool *x509.CertPool // holds Cert alone
	File string         // Cert as PEM, under tb.TempDir()
}

// NewCA generates a CA called name and writes its certificate to File.
func NewCA(tb testing.TB, name string) *CA {
	tb.Helper()
	key := newKey(tb)
	tmpl := template(tb, name)
	tmpl.IsCA = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	ca := &CA{Key: key, Pool: x509.NewCertPool()}
	if ca.Cert, err = x509.ParseCertificate(der); err != nil {
		tb.Fatal(err)
	}
	ca.Pool.AddCert(ca.Cert)
	ca.File = ca.WriteCert(tb, filepath.Join(tb.TempDir(), "ca.pem"))
	return ca
}

// WriteCert writes the CA's certificate as PEM to path and returns path.
func (ca *CA) WriteCert(tb testing.TB, path string) string {
	tb.Helper()
	writeFile(tb, path, pemBytes("CERTIFICATE", ca.Cert.Raw))
	return path
}

// Leaf is a certificate the CA issued, as PEM files and loaded.
type Leaf struct {
	CertFile, KeyFile string // under tb.TempDir()
	TLS               tls.Certificate

	certPEM, keyPEM []byte
}

// Issue signs a certificate for cn with one extended key usage and the
// given subject alternative names, and writes it and its key under
// tb.TempDir().
func (ca *CA) Issue(tb testing.TB, cn string, usage x509.ExtKeyUsage, ips []net.IP, dns ...string) Leaf {
	tb.Helper()
	key := newKey(tb)
	tmpl := template(tb, cn)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{usage}
	tmpl.IPAddresses, tmpl.DNSNames = ips, dns
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		tb.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	l := Leaf{certPEM: pemBytes("CERTIFICATE", der), keyPEM: pemBytes("PRIVATE KEY", kder)}
	if l.TLS, err = tls.X509KeyPair(l.certPEM, l.keyPEM); err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	l.CertFile, l.KeyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	l.WriteTo(tb, l.CertFile, l.KeyFile)
	return l
}

// WriteTo writes the leaf's certificate and key as PEM to certPath and
// keyPath as well, for programs that want fixed file names.
func (l Leaf) WriteTo(tb testing.TB, certPath, keyPath string) {
	tb.Helper()
	writeFile(tb, certPath, l.certPEM)
	writeFile(tb, keyPath, l.keyPEM)
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return key
}

// template is what CA and leaf certificates share: a random 62-bit
// serial, the common name and validity from an hour ago until a day from
// now.
func template(tb testing.TB, cn string) *x509.Certificate {
	tb.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	return &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), BasicConstraintsValid: true}
}

func pemBytes(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func writeFile(tb testing.TB, path string, data []byte) {
	tb.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
}
