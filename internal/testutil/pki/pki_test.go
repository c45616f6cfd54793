package pki

import (
	"crypto/x509"
	"net"
	"testing"
	"time"
)

// A leaf verifies against its CA's pool for its name and usage, and not
// against another CA.
func TestLeafChainsToItsCA(t *testing.T) {
	ca, other := NewCA(t, "test CA"), NewCA(t, "other CA")
	leaf := ca.Issue(t, "host", x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)}, "host.example")
	cert, err := x509.ParseCertificate(leaf.TLS.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	opts := x509.VerifyOptions{Roots: ca.Pool, DNSName: "host.example", CurrentTime: time.Now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if _, err := cert.Verify(opts); err != nil {
		t.Fatalf("the leaf does not verify against its CA: %v", err)
	}
	opts.Roots = other.Pool
	if _, err := cert.Verify(opts); err == nil {
		t.Fatal("the leaf verifies against another CA")
	}
}
