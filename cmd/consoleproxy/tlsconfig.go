//go:build linux

package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"

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

// tlsFiles are the wss:// files SIGHUP re-reads.
type tlsFiles struct {
	cert     *loop.CertHolder
	clientCA *clientCAs // nil without --ssl-client-ca
}

// reload re-reads each file; on an error the previous one stays, and the
// error is logged.
func (f *tlsFiles) reload(log *slog.Logger) {
	if err := f.cert.Reload(); err != nil {
		log.Warn("reload of the TLS certificate failed; the previous one stays", "err", err.Error())
	}
	if f.clientCA == nil {
		return
	}
	if err := f.clientCA.reload(); err != nil {
		log.Error("reload of --ssl-client-ca failed; the previous CA stays", "err", err.Error())
	}
}

// tlsConfig builds the wss:// configuration from the flags; nil without
// --cert. Every problem is a start-up error.
func tlsConfig(o *options, explicit map[string]bool) (*loop.TLSConfig, *tlsFiles, error) {
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
	files := &tlsFiles{cert: holder}
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
		if files.clientCA, err = newClientCAs(o.sslClientCA, cfg); err != nil {
			return nil, nil, err
		}
	}
	return &loop.TLSConfig{Config: cfg, Only: o.sslOnly}, files, nil
}

// clientCAs is --ssl-client-ca, swapped on reload: base's
// GetConfigForClient hands each new handshake a configuration built with
// the current CA pool (its CertificateRequest names those CAs, and the
// client's certificate is verified against them). Sessions already up are
// not touched. A client certified by a CA no longer in the file cannot
// resume an earlier TLS session either: crypto/tls checks a resumed
// session's chains against the handshake's ClientCAs.
type clientCAs struct {
	file string
	base *tls.Config
	cur  atomic.Pointer[tls.Config]
}

// newClientCAs reads file and installs itself in base, which must be
// complete: each reload clones it.
func newClientCAs(file string, base *tls.Config) (*clientCAs, error) {
	c := &clientCAs{file: file, base: base}
	if err := c.reload(); err != nil {
		return nil, err
	}
	// base itself denies by default too (its pool is the first one), though
	// every handshake takes the current configuration.
	base.ClientCAs, base.ClientAuth = c.cur.Load().ClientCAs, tls.RequireAndVerifyClientCert
	base.GetConfigForClient = c.configForClient
	return c, nil
}

// reload reads the CA file; on an error the previous pool stays.
func (c *clientCAs) reload() error {
	pem, err := os.ReadFile(c.file)
	if err != nil {
		return fmt.Errorf("--ssl-client-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("--ssl-client-ca: no certificate in %s", c.file)
	}
	cfg := c.base.Clone()
	cfg.GetConfigForClient = nil
	cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	c.cur.Store(cfg)
	return nil
}

func (c *clientCAs) configForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	return c.cur.Load(), nil
}
