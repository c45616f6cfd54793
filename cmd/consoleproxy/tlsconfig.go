package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/consoleproxy/consoleproxy/loop"
)

// opensslSuites maps OpenSSL names (Nova's ssl_ciphers form) to Go's TLS 1.2
// suites. TLS 1.3 suites are fixed by Go and not configurable.
var opensslSuites = map[string]uint16{
	"ECDHE-ECDSA-AES128-GCM-SHA256": tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-RSA-AES128-GCM-SHA256":   tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-ECDSA-AES256-GCM-SHA384": tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-RSA-AES256-GCM-SHA384":   tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-ECDSA-CHACHA20-POLY1305": tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-RSA-CHACHA20-POLY1305":   tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-ECDSA-AES128-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	"ECDHE-ECDSA-AES256-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
	"ECDHE-RSA-AES128-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	"ECDHE-RSA-AES256-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
	"AES128-GCM-SHA256":             tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
	"AES256-GCM-SHA384":             tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
}

// parseCiphers accepts OpenSSL names separated by ':' or ',' (and Go's own
// TLS_… names); an unknown name is a start-up error naming it.
func parseCiphers(s string) ([]uint16, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	goNames := map[string]uint16{}
	for _, c := range tls.CipherSuites() {
		goNames[c.Name] = c.ID
	}
	var out []uint16
	for _, name := range strings.FieldsFunc(s, func(r rune) bool { return r == ':' || r == ',' || r == ' ' }) {
		id, ok := opensslSuites[name]
		if !ok {
			id, ok = goNames[name]
		}
		if !ok {
			return nil, fmt.Errorf("--ssl-ciphers: unknown or insecure TLS 1.2 suite %q", name)
		}
		out = append(out, id)
	}
	return out, nil
}

// tlsConfig builds the wss:// configuration from the flags; nil without
// --cert. Every problem is a start-up error.
func tlsConfig(o *options, explicit map[string]bool) (*loop.TLSConfig, *loop.CertHolder, error) {
	if o.cert == "" && o.key == "" {
		for _, f := range []string{"ssl-only", "ssl-ciphers", "ssl-client-ca", "ssl-minimum-version"} {
			if explicit[f] {
				return nil, nil, fmt.Errorf("--%s needs --cert and --key", f)
			}
		}
		return nil, nil, nil
	}
	if o.cert == "" || o.key == "" {
		return nil, nil, errors.New("--cert and --key go together")
	}
	holder, err := loop.LoadCert(o.cert, o.key)
	if err != nil {
		return nil, nil, err
	}
	cfg := &tls.Config{GetCertificate: holder.GetCertificate, NextProtos: []string{"http/1.1"}}
	switch o.sslMinVersion {
	case "tlsv1.2":
		cfg.MinVersion = tls.VersionTLS12
	case "tlsv1.3":
		cfg.MinVersion = tls.VersionTLS13
	default:
		return nil, nil, fmt.Errorf("--ssl-minimum-version must be tlsv1.2 or tlsv1.3")
	}
	if cfg.CipherSuites, err = parseCiphers(o.sslCiphers); err != nil {
		return nil, nil, err
	}
	if o.sslClientCA != "" {
		pem, err := os.ReadFile(o.sslClientCA)
		if err != nil {
			return nil, nil, fmt.Errorf("--ssl-client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("--ssl-client-ca: no certificate in %s", o.sslClientCA)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return &loop.TLSConfig{Config: cfg, Only: o.sslOnly}, holder, nil
}
