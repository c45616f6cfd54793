package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ErrOriginRefused is returned by OriginPolicy.Check; the wrapped text is a
// fixed phrase for the log.
var ErrOriginRefused = errors.New("origin refused")

// origin is a parsed serialized origin (RFC 6454 §6.2): lowercase scheme,
// lowercase host (IPv6 without brackets, canonical), port with the
// scheme's default filled in.
type origin struct {
	scheme string
	host   string
	port   int
}

// AllowedOrigin is one --allowed-origins entry: a bare host name (that host on
// any port; the scheme still has to fit how the client came in) or a full
// origin scheme://host[:port] (exactly that scheme, host and port).
type AllowedOrigin struct {
	o        origin
	hostOnly bool
}

// ParseAllowedOrigins parses the comma-separated flag value. Errors name the
// entry's position; they are start-up errors.
func ParseAllowedOrigins(s string) ([]AllowedOrigin, error) {
	var out []AllowedOrigin
	for i, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if strings.Contains(f, "://") {
			o, ok := parseOrigin([]byte(f))
			if !ok {
				return nil, fmt.Errorf("allowed-origins entry %d: not a scheme://host[:port] origin with scheme http or https", i+1)
			}
			out = append(out, AllowedOrigin{o: o})
			continue
		}
		h, ok := parseHostName(strings.TrimSuffix(strings.TrimPrefix(f, "["), "]"))
		if !ok {
			return nil, fmt.Errorf("allowed-origins entry %d: not a host name (use scheme://host:port for a port)", i+1)
		}
		out = append(out, AllowedOrigin{o: origin{host: h}, hostOnly: true})
	}
	return out, nil
}

// OriginPolicy applies docs/contract.md's Origin rules.
type OriginPolicy struct{ Allowed []AllowedOrigin }

// Check decides whether a request's Origin is acceptable. present is false
// when there is no Origin header (a non-browser client: allowed). host is the
// request's Host header; secure says whether the client reached the proxy
// over TLS or through a trusted proxy that says https.
func (p *OriginPolicy) Check(originHdr []byte, present bool, host []byte, secure bool) error {
	if !present {
		return nil
	}
	o, ok := parseOrigin(originHdr)
	if !ok {
		return fmt.Errorf("%w: malformed origin", ErrOriginRefused)
	}
	if (o.scheme == "https") != secure {
		return fmt.Errorf("%w: scheme does not match the connection", ErrOriginRefused)
	}
	if h, ok := parseHostHeader(host, secure); ok && h == (origin{scheme: o.scheme, host: o.host, port: o.port}) {
		return nil
	}
	for _, a := range p.Allowed {
		if a.o.host == o.host && (a.hostOnly || a.o == o) {
			return nil
		}
	}
	return fmt.Errorf("%w: host not allowed", ErrOriginRefused)
}

// parseOrigin parses a serialized origin strictly: scheme http or https,
// "://", then host[:port] and nothing else (no path, not even "/", no query,
// fragment or user info); ASCII only, no percent-encoding or backslashes.
// "null" is refused.
func parseOrigin(b []byte) (origin, bool) {
	s := string(b)
	scheme, rest, found := strings.Cut(s, "://")
	if !found {
		return origin{}, false
	}
	scheme = strings.ToLower(scheme)
	port := 80
	switch scheme {
	case "http":
	case "https":
		port = 443
	default:
		return origin{}, false
	}
	host, p, ok := splitHostPort(rest, port)
	if !ok {
		return origin{}, false
	}
	return origin{scheme: scheme, host: host, port: p}, true
}

// parseHostHeader parses a Host header value with the default port of the
// scheme the client used.
func parseHostHeader(b []byte, secure bool) (origin, bool) {
	def, scheme := 80, "http"
	if secure {
		def, scheme = 443, "https"
	}
	host, port, ok := splitHostPort(string(b), def)
	return origin{scheme: scheme, host: host, port: port}, ok
}

// splitHostPort parses host[:port] or [v6][:port]; the host is lowercased
// and checked, the port defaults to def.
func splitHostPort(s string, def int) (string, int, bool) {
	host, portStr := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", 0, false
		}
		host, portStr = s[1:end], s[end+1:]
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", 0, false
		}
		host = a.String()
		if portStr != "" && !strings.HasPrefix(portStr, ":") {
			return "", 0, false
		}
		portStr = strings.TrimPrefix(portStr, ":")
	} else {
		if i := strings.IndexByte(s, ':'); i >= 0 {
			host, portStr = s[:i], s[i+1:]
		}
		var ok bool
		if host, ok = parseHostName(host); !ok {
			return "", 0, false
		}
	}
	if portStr == "" {
		return host, def, !strings.HasSuffix(s, ":")
	}
	port, ok := parsePort(portStr)
	return host, port, ok
}

// parseHostName checks a DNS name or IPv4 literal (or a bare IPv6 literal,
// as --allowed-origins may give it): labels of letters, digits, '-' and '_',
// no empty label (so no trailing dot: "example.com." is another name).
func parseHostName(h string) (string, bool) {
	if a, err := netip.ParseAddr(h); err == nil && a.Is6() && a.Zone() == "" {
		return a.String(), true
	}
	if h == "" || len(h) > 253 {
		return "", false
	}
	h = strings.ToLower(h)
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return "", false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return "", false
			}
		}
	}
	return h, true
}

// parsePort accepts 1-65535 written with digits only, no leading zero.
func parsePort(s string) (int, bool) {
	if s == "" || len(s) > 5 || s[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 1 && n <= 65535
}
