package novaconf

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func load(t *testing.T, names ...string) (*Files, error) {
	t.Helper()
	var paths []string
	for _, n := range names {
		paths = append(paths, filepath.Join("testdata", n))
	}
	return Load(paths...)
}

func read(t *testing.T, names ...string) Options {
	t.Helper()
	fs, err := load(t, names...)
	if err != nil {
		t.Fatal(err)
	}
	o, err := Read(fs)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func str(p *string) string {
	if p == nil {
		return "<unset>"
	}
	return *p
}

// TestReadEveryOption: testdata/nova.conf sets every option consoleproxy
// reads, with $-references as deployment tools write them.
func TestReadEveryOption(t *testing.T) {
	o := read(t, "nova.conf")
	for _, tc := range []struct{ name, got, want string }{
		{"cert", str(o.Cert), "/etc/nova/ssl/console.pem"},
		{"key", str(o.Key), "/etc/nova/ssl/console.key"},
		{"web", str(o.Web), "/usr/share/novnc"},
		{"allowed_origins", str(o.AllowedOrigins), "console.example.com, https://portal.example.com:8443"},
		{"ssl_ciphers", str(o.SSLCiphers), "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256"},
		{"ssl_minimum_version", str(o.SSLMinimumVersion), "tlsv1_2"},
		{"auth_schemes", str(o.VNCAuthSchemes), "none"},
		{"vencrypt_ca_certs", str(o.VeNCryptCACerts), "/etc/pki/libvirt-vnc/ca-cert.pem"},
		{"vencrypt_client_cert", str(o.VeNCryptClientCert), "/etc/pki/nova-novncproxy/client-cert.pem"},
		{"vencrypt_client_key", str(o.VeNCryptClientKey), "/etc/pki/nova-novncproxy/client-key.pem"},
		{"connection ([database], not [api_database])", str(o.DatabaseConnection),
			"mysql+pymysql://nova:s3cr%3Bt@db.example.net/nova_cell1?charset=utf8"},
		{"where", o.Where["console.ssl_ciphers"], filepath.Join("testdata", "nova.conf") + ":21"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, tc.got, tc.want)
		}
	}
	if o.SSLOnly == nil || !*o.SSLOnly || o.SourceIsIPv6 == nil || *o.SourceIsIPv6 || o.EnforceSessionTimeout == nil || !*o.EnforceSessionTimeout {
		t.Errorf("booleans: ssl_only %v source_is_ipv6 %v enforce_session_timeout %v", o.SSLOnly, o.SourceIsIPv6, o.EnforceSessionTimeout)
	}
	for kind, want := range map[string]string{"novnc": "192.0.2.10:6080", "serial": "192.0.2.10:16083", "spice-html5": "[::]:6082"} {
		if got, err := o.ListenAddress(kind); err != nil || got != want {
			t.Errorf("listen %s: %q %v, want %q", kind, got, err, want)
		}
	}
}

// TestReadLaterFileWins: like repeated --config-file, the later file wins
// option by option; the rest comes from the earlier one.
func TestReadLaterFileWins(t *testing.T) {
	o := read(t, "nova.conf", "override.conf")
	if *o.SSLOnly || str(o.Web) != "/usr/share/novnc" {
		t.Errorf("ssl_only %v web %q", *o.SSLOnly, str(o.Web))
	}
	if got, _ := o.ListenAddress("novnc"); got != "192.0.2.10:16080" { // [VNC] is [vnc]
		t.Errorf("novnc listen %q", got)
	}
	if !strings.HasPrefix(str(o.DatabaseConnection), "postgresql+psycopg2://") {
		t.Errorf("connection from the later file expected")
	}
	if o.Where["DEFAULT.ssl_only"] != filepath.Join("testdata", "override.conf")+":3" {
		t.Errorf("where %q", o.Where["DEFAULT.ssl_only"])
	}
}

// TestReadDeprecatedNames: options under the names and groups oslo still
// accepts.
func TestReadDeprecatedNames(t *testing.T) {
	o := read(t, "deprecated.conf")
	if got, _ := o.ListenAddress("novnc"); got != "198.51.100.7:6090" {
		t.Errorf("novnc listen %q", got)
	}
	if str(o.AllowedOrigins) != "old.example.com" || str(o.DatabaseConnection) != "mysql://nova:oldpw@olddb/nova" {
		t.Errorf("origins %q", str(o.AllowedOrigins))
	}
}

// TestReadDefaults: with nothing set, Nova's defaults: 0.0.0.0 and the
// type's port.
func TestReadDefaults(t *testing.T) {
	o := read(t, "continuation.conf")
	if str(o.AllowedOrigins) != "console.example.com,\nportal.example.com,\nother.example.com" {
		t.Errorf("continuation: %q", str(o.AllowedOrigins))
	}
	for kind, want := range map[string]string{"novnc": "0.0.0.0:6080", "serial": "0.0.0.0:6083", "spice-html5": "0.0.0.0:6082"} {
		if got, _ := o.ListenAddress(kind); got != want {
			t.Errorf("%s: %q, want %q", kind, got, want)
		}
	}
	if o.Cert != nil || o.SSLOnly != nil || o.DatabaseConnection != nil {
		t.Error("unset options must stay nil")
	}
	o = read(t, "crlf.conf")
	if got, _ := o.ListenAddress("novnc"); got != "0.0.0.0:7000" || str(o.Web) != "/usr/share/novnc" {
		t.Errorf("CRLF/CR file: %q %q", got, str(o.Web))
	}
}

// TestReadErrors: a malformed file or value is an error naming the file and
// the line, and never shows the database password.
func TestReadErrors(t *testing.T) {
	for file, want := range map[string]string{
		"bad-section.conf":    "bad-section.conf:4: invalid section",
		"bad-assignment.conf": "bad-assignment.conf:3: no ':' or '=' found",
		"bad-port.conf":       `bad-port.conf:2: [vnc] novncproxy_port: "sixty-eighty" is not a port`,
		"bad-bool.conf":       `bad-bool.conf:2: [DEFAULT] ssl_only: "maybe" is not a boolean`,
		"no-section.conf":     "no-section.conf:2: section must be started",
		"bad-reference.conf":  "bad-reference.conf:2: [vnc] novncproxy_host: refers to $my_ip, which these files do not set",
		"missing.conf":        "no such file",
	} {
		fs, err := load(t, file)
		if err == nil {
			_, err = Read(fs)
		}
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "NEVERSHOWN") {
			t.Errorf("%s: %v, want %q", file, err, want)
		}
	}
}

// TestSubstitution: oslo's $-references.
func TestSubstitution(t *testing.T) {
	f, err := Parse("f", strings.NewReader(`[DEFAULT]
a = x
b = $a-$$-${a}
pw = p$$ss
loop1 = $loop2
loop2 = $loop1
[g]
a = local
c = $a/${DEFAULT.a}/$b
d = $ not a name, $1, ${a
e = $nothing
`))
	if err != nil {
		t.Fatal(err)
	}
	fs := NewFiles(f)
	for _, tc := range []struct {
		name      Name
		want, err string
	}{
		{Name{"DEFAULT", "b"}, "x-$-x", ""},
		{Name{"DEFAULT", "pw"}, "p$ss", ""},
		{Name{"g", "c"}, "local/x/x-$-x", ""},
		{Name{"g", "d"}, "$ not a name, $1, ${a", ""},
		{Name{"g", "e"}, "", "refers to $nothing"},
		{Name{"DEFAULT", "loop1"}, "", "a loop?"},
	} {
		v, _, err := fs.Get(tc.name)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: err %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || v.Text != tc.want {
			t.Errorf("%v: %q %v, want %q", tc.name, v.Text, err, tc.want)
		}
	}
}

func TestListenAddressUnknownType(t *testing.T) {
	if _, err := (Options{}).ListenAddress("rdp"); err == nil {
		t.Fatal("want an error")
	}
	if !reflect.DeepEqual(ConsoleTypes, []string{"novnc", "serial", "spice-html5"}) {
		t.Fatal(ConsoleTypes)
	}
}
