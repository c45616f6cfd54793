package novaconf

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Options are the nova.conf options a console proxy reads. A nil field is
// an option the files do not set (Nova's default applies, if any); Where
// names the file and line of each option set, for messages.
type Options struct {
	// [DEFAULT] (nova/conf/novnc.py)
	Cert, Key, Web        *string
	SSLOnly, SourceIsIPv6 *bool
	// [console]
	AllowedOrigins                *string // a comma-separated list, as written
	SSLCiphers, SSLMinimumVersion *string
	// [consoleauth]
	EnforceSessionTimeout *bool
	// [vnc], [serial_console], [spice]: where each proxy listens
	Listen map[string]HostPort // by console type: novnc, serial, spice-html5
	// [vnc] auth_schemes: "none" or a list naming vencrypt, and VeNCrypt's
	// certificate files
	VNCAuthSchemes                                         *string
	VeNCryptCACerts, VeNCryptClientCert, VeNCryptClientKey *string
	// [database] connection: an SQLAlchemy URL; a secret (never in messages)
	DatabaseConnection *string

	Where map[string]string // "group.option" → "file:line"
}

// HostPort is a proxy's listening address from nova.conf; nil fields are
// not set.
type HostPort struct {
	Host *string
	Port *int
}

// ConsoleSections says where each console type's proxy finds its address
// and Nova's defaults for it.
var ConsoleSections = map[string]struct {
	Group, HostOption, PortOption string
	DefaultPort                   int
}{
	"novnc":       {"vnc", "novncproxy_host", "novncproxy_port", 6080},
	"serial":      {"serial_console", "serialproxy_host", "serialproxy_port", 6083},
	"spice-html5": {"spice", "html5proxy_host", "html5proxy_port", 6082},
}

// ConsoleTypes are the keys of ConsoleSections in a fixed order.
var ConsoleTypes = []string{"novnc", "serial", "spice-html5"}

// DefaultHost is Nova's default for every proxy's host option.
const DefaultHost = "0.0.0.0"

// Read extracts Options from fs. A value of the wrong type is an error
// naming the file, the line and the option (never the database URL).
func Read(fs *Files) (Options, error) {
	o := Options{Listen: map[string]HostPort{}, Where: map[string]string{}}
	r := reader{fs: fs, o: &o}
	r.str(&o.Cert, Name{"DEFAULT", "cert"})
	r.str(&o.Key, Name{"DEFAULT", "key"})
	r.str(&o.Web, Name{"DEFAULT", "web"})
	r.boolean(&o.SSLOnly, Name{"DEFAULT", "ssl_only"})
	r.boolean(&o.SourceIsIPv6, Name{"DEFAULT", "source_is_ipv6"})
	r.str(&o.AllowedOrigins, Name{"console", "allowed_origins"}, Name{"DEFAULT", "console_allowed_origins"})
	r.str(&o.SSLCiphers, Name{"console", "ssl_ciphers"})
	r.str(&o.SSLMinimumVersion, Name{"console", "ssl_minimum_version"})
	r.boolean(&o.EnforceSessionTimeout, Name{"consoleauth", "enforce_session_timeout"})
	r.str(&o.VNCAuthSchemes, Name{"vnc", "auth_schemes"})
	r.str(&o.VeNCryptCACerts, Name{"vnc", "vencrypt_ca_certs"})
	r.str(&o.VeNCryptClientCert, Name{"vnc", "vencrypt_client_cert"})
	r.str(&o.VeNCryptClientKey, Name{"vnc", "vencrypt_client_key"})
	// oslo.db's deprecated spellings of [database] connection.
	r.str(&o.DatabaseConnection, Name{"database", "connection"}, Name{"DEFAULT", "sql_connection"},
		Name{"DATABASE", "sql_connection"}, Name{"sql", "connection"})
	for _, kind := range ConsoleTypes {
		sec, hp := ConsoleSections[kind], HostPort{}
		r.str(&hp.Host, Name{sec.Group, sec.HostOption}, Name{"DEFAULT", sec.HostOption})
		r.port(&hp.Port, Name{sec.Group, sec.PortOption}, Name{"DEFAULT", sec.PortOption})
		o.Listen[kind] = hp
	}
	return o, r.err
}

// reader collects options and the first error.
type reader struct {
	fs  *Files
	o   *Options
	err error
}

// get returns the substituted text of the first of names that is set.
func (r *reader) get(names ...Name) (Value, bool) {
	if r.err != nil {
		return Value{}, false
	}
	v, ok, err := r.fs.Get(names...)
	if err != nil {
		r.err = err
		return v, false
	}
	if ok {
		r.o.Where[names[0].Group+"."+names[0].Option] = v.Where()
	}
	return v, ok
}

func (r *reader) str(dst **string, names ...Name) {
	if v, ok := r.get(names...); ok {
		*dst = &v.Text
	}
}

// boolean is oslo's types.Boolean: true, 1, on, yes / false, 0, off, no, in
// any case.
func (r *reader) boolean(dst **bool, names ...Name) {
	v, ok := r.get(names...)
	if !ok {
		return
	}
	switch strings.ToLower(v.Text) {
	case "true", "1", "on", "yes":
		*dst = ptr(true)
	case "false", "0", "off", "no":
		*dst = ptr(false)
	default:
		r.err = fmt.Errorf("%s: [%s] %s: %q is not a boolean (true/false, yes/no, on/off, 1/0)",
			v.Where(), names[0].Group, names[0].Option, v.Text)
	}
}

// port is oslo's PortOpt: an integer from 0 to 65535.
func (r *reader) port(dst **int, names ...Name) {
	v, ok := r.get(names...)
	if !ok {
		return
	}
	n, err := strconv.Atoi(strings.TrimPrefix(v.Text, "+"))
	if err != nil || n < 0 || n > 65535 {
		r.err = fmt.Errorf("%s: [%s] %s: %q is not a port (0 to 65535)", v.Where(), names[0].Group, names[0].Option, v.Text)
		return
	}
	*dst = &n
}

func ptr[T any](v T) *T { return &v }

// ListenAddress returns where the proxy for consoleType listens according
// to the files, with Nova's defaults (0.0.0.0 and the type's port) for what
// they leave out. source_is_ipv6 turns the default wildcard into "::".
func (o Options) ListenAddress(consoleType string) (string, error) {
	sec, ok := ConsoleSections[consoleType]
	if !ok {
		return "", fmt.Errorf("no nova.conf section for console type %q", consoleType)
	}
	hp := o.Listen[consoleType]
	host, port := DefaultHost, sec.DefaultPort
	if hp.Host != nil {
		host = *hp.Host
	}
	if hp.Port != nil {
		port = *hp.Port
	}
	if host == DefaultHost && o.SourceIsIPv6 != nil && *o.SourceIsIPv6 {
		host = "::"
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(port)), nil
}
