//go:build linux

package main

import (
	"fmt"
	"strings"

	"github.com/consoleproxy/consoleproxy/cmd/consoleproxy/novaconf"
	"github.com/consoleproxy/consoleproxy/relay/tokens"
)

// applyNovaConfig reads the --nova-config files (later ones win) and takes
// from them every option no flag or environment variable set: flags win.
// What it takes counts as given (explicit), so the checks downstream apply
// to it as to a flag. Options whose feature consoleproxy lacks stop the
// start-up with a message naming them, never silently ignored.
func applyNovaConfig(o *options, explicit map[string]bool) error {
	if len(o.novaConfig) == 0 {
		return nil
	}
	fs, err := novaconf.Load(o.novaConfig...)
	if err != nil {
		return err
	}
	nc, err := novaconf.Read(fs)
	if err != nil {
		return fmt.Errorf("nova config: %w", err)
	}
	take := func(flag string, v *string, dst *string) {
		if v != nil && *v != "" && !explicit[flag] {
			*dst, explicit[flag] = *v, true
		}
	}
	takeBool := func(flag string, v *bool, dst *bool) {
		if v != nil && !explicit[flag] {
			*dst, explicit[flag] = *v, true
		}
	}
	if o.consoleType != "serial" { // nova-serialproxy ignores [DEFAULT] web
		take("web", nc.Web, &o.web)
	}
	take("allowed-origins", listOpt(nc.AllowedOrigins), &o.allowedOrigins)
	if o.consoleType == "novnc" { // [vnc] is nova-novncproxy's section
		take("vnc-auth-schemes", listOpt(nc.VNCAuthSchemes), &o.vncAuthSchemes)
	}
	// Nova ignores the VeNCrypt files unless VeNCrypt is on; so does this
	// (as flags they would be refused: set without effect).
	if o.consoleType == "novnc" && strings.Contains(strings.ToLower(o.vncAuthSchemes), "vencrypt") {
		take("vencrypt-ca-certs", nc.VeNCryptCACerts, &o.vencryptCA)
		take("vencrypt-client-cert", nc.VeNCryptClientCert, &o.vencryptCert)
		take("vencrypt-client-key", nc.VeNCryptClientKey, &o.vencryptKey)
	}
	takeBool("enforce-session-timeout", nc.EnforceSessionTimeout, &o.enforceSessionTimeout)
	if err := novaTLS(o, explicit, nc); err != nil {
		return err
	}
	if !explicit["listen"] {
		if o.listen, err = nc.ListenAddress(o.consoleType); err != nil {
			return fmt.Errorf("nova config: %w", err)
		}
		explicit["listen"] = true
	}
	return novaTokenStore(o, explicit, nc)
}

// listOpt turns oslo's ListOpt text (commas, possibly across continuation
// lines) into a flag's comma-separated form.
func listOpt(v *string) *string {
	if v == nil {
		return nil
	}
	var out []string
	for _, f := range strings.FieldsFunc(*v, func(r rune) bool { return r == ',' || r == '\n' }) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	s := strings.Join(out, ",")
	return &s
}

// novaTLS takes Nova's [DEFAULT] cert, key, ssl_only and [console]
// ssl_ciphers, ssl_minimum_version. As in Nova, key defaults to the cert
// file (one PEM holding both), and the cipher and version options only
// matter with a certificate. Unlike Nova, no cert means no TLS (Nova's
// default ./self.pem is not assumed), so ssl_only without a cert is an error.
func novaTLS(o *options, explicit map[string]bool, nc novaconf.Options) error {
	if nc.Cert != nil && *nc.Cert != "" && !explicit["cert"] {
		o.cert, explicit["cert"] = *nc.Cert, true
		if !explicit["key"] {
			o.key = o.cert
			if nc.Key != nil && *nc.Key != "" {
				o.key = *nc.Key
			}
			explicit["key"] = true
		}
	}
	if nc.SSLOnly != nil && *nc.SSLOnly && !explicit["ssl-only"] {
		if o.cert == "" {
			return fmt.Errorf("nova config: %s: [DEFAULT] ssl_only is true but no cert is set (Nova's default self.pem is not assumed)",
				nc.Where["DEFAULT.ssl_only"])
		}
		o.sslOnly, explicit["ssl-only"] = true, true
	}
	if o.cert == "" {
		return nil // Nova ignores the rest without TLS
	}
	if nc.SSLCiphers != nil && !explicit["ssl-ciphers"] {
		if _, err := parseCiphers(*nc.SSLCiphers); err != nil {
			return fmt.Errorf("nova config: %s: [console] ssl_ciphers: %w", nc.Where["console.ssl_ciphers"], err)
		}
		o.sslCiphers = *nc.SSLCiphers
	}
	if v := nc.SSLMinimumVersion; v != nil && !explicit["ssl-minimum-version"] {
		switch *v {
		case "default", "tlsv1_2":
			o.sslMinVersion = "tlsv1.2"
		case "tlsv1_3":
			o.sslMinVersion = "tlsv1.3"
		default:
			return fmt.Errorf("nova config: %s: [console] ssl_minimum_version = %q: consoleproxy accepts default, tlsv1_2 or tlsv1_3 (never below TLS 1.2)",
				nc.Where["console.ssl_minimum_version"], *v)
		}
	}
	return nil
}

// novaTokenStore takes [database] connection as --token-store novadb:…
// unless --token-store is given; with neither, start-up fails rather than
// fall back on the embedded store.
func novaTokenStore(o *options, explicit map[string]bool, nc novaconf.Options) error {
	if explicit["token-store"] {
		return nil
	}
	if nc.DatabaseConnection == nil || *nc.DatabaseConnection == "" {
		return fmt.Errorf("nova config: [database] connection is not set and no --token-store is given")
	}
	if _, err := tokens.ParseNovaDSN(*nc.DatabaseConnection); err != nil {
		return fmt.Errorf("nova config: %s: [database] connection: %w", nc.Where["database.connection"], err)
	}
	o.tokenStore, explicit["token-store"] = "novadb:"+*nc.DatabaseConnection, true
	return nil
}

// openNovaDB opens `--token-store novadb:DSN`.
func (a *app) openNovaDB(dsn string) (tokens.Store, error) {
	d, err := tokens.ParseNovaDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("--token-store: %w", err)
	}
	a.log.Info("token store: nova database", "database", d.String())
	return tokens.OpenNovaDB(tokens.NovaDBConfig{DSN: d, Logger: a.log})
}
