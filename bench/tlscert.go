package bench

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// TLSFiles are a self-signed certificate and its key for a target's TLS
// listener (tls-silent, the TLS scenarios), written into a run's folder.
type TLSFiles struct {
	Cert, Key string // PEM files
	Combined  string // certificate then key in one PEM file (haproxy's crt)
}

// CertKind is the key type of a self-signed certificate.
type CertKind string

// The certificate kinds the TLS scenarios compare.
const (
	CertECDSAP256 CertKind = "ecdsa-p256"
	CertRSA2048   CertKind = "rsa-2048"
)

// writeSelfSigned makes a P-256 key and a certificate for 127.0.0.1 and
// localhost, valid for a day, in dir.
func writeSelfSigned(dir string) (*TLSFiles, error) { return writeCert(dir, CertECDSAP256) }

// newKey makes a key of kind.
func newKey(kind CertKind) (crypto.Signer, error) {
	switch kind {
	case CertECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case CertRSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	}
	return nil, fmt.Errorf("unknown certificate kind %q", kind)
}

// writeCert makes a key of kind and a self-signed certificate for 127.0.0.1
// and localhost, valid for a day, in dir (PEM; the key as PKCS #8).
func writeCert(dir string, kind CertKind) (*TLSFiles, error) {
	key, err := newKey(kind)
	if err != nil {
		return nil, fmt.Errorf("tls key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, fmt.Errorf("tls serial: %w", err)
	}
	now := time.Now()
	usage := x509.KeyUsageDigitalSignature
	if kind == CertRSA2048 {
		usage |= x509.KeyUsageKeyEncipherment
	}
	tpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "consolebench"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: usage, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("tls certificate: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("tls key: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
	f := &TLSFiles{Cert: filepath.Join(dir, "tls-cert.pem"), Key: filepath.Join(dir, "tls-key.pem"),
		Combined: filepath.Join(dir, "tls-combined.pem")}
	for _, w := range []struct {
		path string
		data []byte
	}{{f.Cert, certPEM}, {f.Key, keyPEM}, {f.Combined, append(append([]byte(nil), certPEM...), keyPEM...)}} {
		if err := os.WriteFile(w.path, w.data, 0o600); err != nil {
			return nil, fmt.Errorf("tls files: %w", err)
		}
	}
	return f, nil
}
