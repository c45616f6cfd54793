//go:build linux

package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// novaRun parses args with a nova.conf holding conf, then applies it.
func novaRun(t *testing.T, conf string, args ...string) (*options, map[string]bool, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nova.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	o, explicit, err := parseFlags(append([]string{"--nova-config", path}, args...), func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := notYet(explicit); err != nil {
		t.Fatal(err)
	}
	return o, explicit, applyNovaConfig(o, explicit)
}

const novaConf = `[DEFAULT]
web = /usr/share/novnc
[console]
allowed_origins = a.example.com,
  b.example.com
ssl_ciphers = ECDHE-RSA-AES128-GCM-SHA256
[consoleauth]
enforce_session_timeout = true
[vnc]
novncproxy_host = 127.0.0.1
novncproxy_port = 16080
[serial_console]
serialproxy_port = 16083
[database]
connection = mysql+pymysql://nova:pw@db.example.net/nova?charset=utf8
`

// TestNovaConfigTaken: options the flags leave alone come from nova.conf,
// the listen address from the console type's section.
func TestNovaConfigTaken(t *testing.T) {
	o, _, err := novaRun(t, novaConf)
	if err != nil {
		t.Fatal(err)
	}
	if o.listen != "127.0.0.1:16080" || o.web != "/usr/share/novnc" || o.allowedOrigins != "a.example.com,b.example.com" ||
		!o.enforceSessionTimeout || o.tokenStore != "novadb:mysql+pymysql://nova:pw@db.example.net/nova?charset=utf8" {
		t.Fatalf("%+v", o)
	}
	if o.sslCiphers != "" {
		t.Errorf("ssl_ciphers without a cert must stay unused, as in Nova: %q", o.sslCiphers)
	}
	if o, _, _ := novaRun(t, novaConf, "--console-type", "serial"); o.listen != "0.0.0.0:16083" || o.web != "" {
		t.Errorf("serial: listen %q, web %q (nova-serialproxy serves no files)", o.listen, o.web)
	}
	if o, _, _ := novaRun(t, novaConf, "--console-type", "spice-html5"); o.listen != "0.0.0.0:6082" || o.web != "/usr/share/novnc" {
		t.Errorf("spice listen %q", o.listen)
	}
}

// TestNovaConfigFlagsWin: a flag beats the file.
// TestNovaConfigPlain: ssl_only = false and TLS options without a cert
// leave TLS off, as in Nova; start-up goes on.
func TestNovaConfigPlain(t *testing.T) {
	o, explicit, err := novaRun(t, novaConf+"[DEFAULT]\nssl_only = false\n[console]\nssl_minimum_version = tlsv1_3\n")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tlsConfig(o, explicit); err != nil || o.sslOnly || o.cert != "" {
		t.Fatalf("%+v: %v", o, err)
	}
}

func TestNovaConfigFlagsWin(t *testing.T) {
	o, _, err := novaRun(t, novaConf, "--listen", "127.0.0.1:7000", "--token-store", "file:/x", "--web", "")
	if err != nil {
		t.Fatal(err)
	}
	if o.listen != "127.0.0.1:7000" || o.tokenStore != "file:/x" || o.web != "" {
		t.Fatalf("%+v", o)
	}
}

// TestNovaConfigRefused: what consoleproxy cannot honour stops start-up
// with the file, line and option named; a database URL never shows.
func TestNovaConfigRefused(t *testing.T) {
	for _, tc := range []struct{ conf, want string }{
		{"[DEFAULT]\nssl_only = true\n[database]\nconnection = mysql://a:b@c/d\n", "nova.conf:2: [DEFAULT] ssl_only is true but no cert"},
		{"[DEFAULT]\ncert = /c.pem\n[console]\nssl_minimum_version = tlsv1_1\n[database]\nconnection = mysql://a:b@c/d\n", "nova.conf:4: [console] ssl_minimum_version"},
		{"[DEFAULT]\ncert = /c.pem\n[console]\nssl_ciphers = HIGH:!aNULL\n[database]\nconnection = mysql://a:b@c/d\n", "nova.conf:4: [console] ssl_ciphers"},
		{"[DEFAULT]\nweb = /w\n", "[database] connection is not set"},
		{"[database]\nconnection = sqlite:///SECRETPATH\n", "nova.conf:2: [database] connection: novadb: unsupported database"},
		{"[database]\nconnection = mysql://nova:SECRET@db/nova?bogus=1\n", `nova.conf:2: [database] connection: novadb: unsupported MySQL URL parameter "bogus"`},
		{"[vnc\n", "nova.conf:1: invalid section"},
	} {
		_, _, err := novaRun(t, tc.conf)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%q: %v, want %q", tc.conf, err, tc.want)
		}
	}
}

// TestNovaConfigTLS: cert and key as Nova reads them (key defaults to the
// cert file), ssl_minimum_version mapped.
func TestNovaConfigTLS(t *testing.T) {
	o, _, err := novaRun(t, novaConf+"[DEFAULT]\ncert = /etc/nova/console.pem\nssl_only = yes\n[console]\nssl_minimum_version = tlsv1_3\n")
	if err != nil {
		t.Fatal(err)
	}
	if o.cert != "/etc/nova/console.pem" || o.key != o.cert || !o.sslOnly || o.sslMinVersion != "tlsv1.3" ||
		o.sslCiphers != "ECDHE-RSA-AES128-GCM-SHA256" {
		t.Fatalf("%+v", o)
	}
}

// TestNovaConfigVeNCrypt: nova-novncproxy's [vnc] auth_schemes and VeNCrypt
// files become the --vnc-auth-schemes and --vencrypt-* options (flags
// win); the other console types do not read [vnc]. The files are checked
// when the security proxy is built: vencrypt without a CA stops start-up.
func TestNovaConfigVeNCrypt(t *testing.T) {
	conf := "[vnc]\nauth_schemes = vencrypt,\n  none\nvencrypt_ca_certs = /etc/pki/ca.pem\n" +
		"vencrypt_client_cert = /etc/pki/c.pem\nvencrypt_client_key = /etc/pki/k.pem\n[database]\nconnection = mysql://a:b@c/d\n"
	o, _, err := novaRun(t, conf)
	if err != nil {
		t.Fatal(err)
	}
	if o.vncAuthSchemes != "vencrypt,none" || o.vencryptCA != "/etc/pki/ca.pem" ||
		o.vencryptCert != "/etc/pki/c.pem" || o.vencryptKey != "/etc/pki/k.pem" {
		t.Fatalf("took %q %q %q %q", o.vncAuthSchemes, o.vencryptCA, o.vencryptCert, o.vencryptKey)
	}
	if o, _, err = novaRun(t, conf, "--vnc-auth-schemes", "none"); err != nil || o.vncAuthSchemes != "none" {
		t.Fatalf("flag did not win: %q %v", o.vncAuthSchemes, err)
	}
	if o, _, err = novaRun(t, conf, "--vnc-auth-schemes", "none"); err != nil || o.vencryptCA != "" {
		t.Fatalf("VeNCrypt files taken without VeNCrypt: %q %v", o.vencryptCA, err)
	}
	if _, err := securityProxy(o); err != nil {
		t.Fatalf("unused VeNCrypt files in nova.conf stop start-up: %v", err)
	}
	if o, _, err = novaRun(t, conf, "--console-type", "serial"); err != nil || o.vncAuthSchemes != "none" || o.vencryptCA != "" {
		t.Fatalf("serial took [vnc]: %q %q %v", o.vncAuthSchemes, o.vencryptCA, err)
	}
	o, _, err = novaRun(t, "[vnc]\nauth_schemes = vencrypt\n[database]\nconnection = mysql://a:b@c/d\n")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := securityProxy(o); err == nil || !strings.Contains(err.Error(), "vencrypt_ca_certs") {
		t.Fatalf("vencrypt without a CA: %v", err)
	}
}

// TestSecurityProxyFlags: what the start-up refuses about the security
// proxy's flags, each with a message naming the flag.
func TestSecurityProxyFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // "" is no error
	}{
		{nil, ""},
		{[]string{"--vnc-auth-schemes", "none"}, ""},
		{[]string{"--vnc-auth-schemes", "vnc"}, "--vnc-auth-schemes"},
		{[]string{"--vnc-auth-schemes", "vencrypt"}, "--vencrypt-ca-certs"},
		{[]string{"--vnc-auth-schemes", "vencrypt", "--vencrypt-ca-certs", "/nonexistent/ca.pem"}, "/nonexistent/ca.pem"},
		{[]string{"--vencrypt-ca-certs", "/etc/ca.pem"}, "does not name vencrypt"},
	} {
		o, _, err := parseFlags(tc.args, func(string) string { return "" }, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		_, err = securityProxy(o)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%q: %v, want %q", tc.args, err, tc.want)
		}
	}
}
