//go:build linux

package relay

import (
	"errors"
	"net/netip"
	"strconv"
)

// Limits of the CONNECT exchange with a compute host (Nova's
// internal_access_path) or a forward proxy.
const (
	// MaxAccessPath bounds internal_access_path, the request target.
	MaxAccessPath = 1024
	// MaxConnectAnswer bounds the answer's head: status line, header
	// fields and the blank line.
	MaxConnectAnswer = 8 << 10
	// maxHostName bounds the compute host's name in the Host header
	// (RFC 1035 §2.3.4: 253 characters in text form).
	maxHostName = 253
	// connectAnswerRead is one read while waiting for the answer.
	connectAnswerRead = 4 << 10
)

// Errors of the CONNECT exchange; each maps to a distinct result in the
// metrics. A non-2xx answer wraps ErrConnectRefused with its status code
// (ConnectParser.Status has it too).
var (
	ErrBadAccessPath    = errors.New("internal_access_path is not a valid request target")
	ErrBadHost          = errors.New("compute host is not an IP address or DNS name")
	ErrConnectRefused   = errors.New("CONNECT answered with a non-2xx status")
	ErrConnectMalformed = errors.New("malformed CONNECT answer")
	ErrConnectTooLarge  = errors.New("CONNECT answer head too large")
	ErrConnectClosed    = errors.New("compute host closed during CONNECT")
	ErrConnectTimeout   = errors.New("CONNECT answer timed out")
)

// ValidAccessPath reports whether p is an origin-form request target
// (RFC 9112 §3.2.1: absolute-path [ "?" query ]) made only of RFC 3986 path
// and query characters (§3.3, §3.4): no CR, LF, SP, other control bytes,
// '#' or non-ASCII, at most MaxAccessPath bytes. Percent-escapes must be well
// formed (§2.1) and are passed through, never decoded.
func ValidAccessPath(p string) bool {
	if len(p) == 0 || len(p) > MaxAccessPath || p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '%':
			if i+2 >= len(p) || !isHexDigit(p[i+1]) || !isHexDigit(p[i+2]) {
				return false
			}
			i += 2
		case c == '/', c == '?', isPathChar(c):
		default:
			return false
		}
	}
	return true
}

// isPathChar: RFC 3986 pchar minus pct-encoded (unreserved, sub-delims, ':'
// and '@'); '/' and '?' are handled by the caller.
func isPathChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '_', '~', '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', ':', '@':
		return true
	}
	return false
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// validHost reports whether host is an IP address without a zone (netip
// takes any bytes as a zone, CR and LF included) or made of DNS name
// characters only (letters, digits, '-', '.', '_'): nothing that could end
// or add a header line.
// A DNS name is checked first: netip's error for one would allocate.
func validHost(host string) bool {
	if dnsChars(host) {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Zone() == ""
}

// dnsChars reports whether host is 1 to maxHostName DNS name characters
// (an IPv4 address is too).
func dnsChars(host string) bool {
	if len(host) == 0 || len(host) > maxHostName {
		return false
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// AppendConnect appends exactly "CONNECT <target> HTTP/1.1", a Host header
// naming host:port (an IPv6 address in brackets), and the blank line, to dst
// and returns the extended slice. It refuses, appending nothing, a target
// that fails ValidAccessPath (ErrBadAccessPath) and a host or port that could
// not be a compute host's (ErrBadHost): no injected byte can reach a socket.
func AppendConnect(dst []byte, target, host string, port int) ([]byte, error) {
	if err := checkConnect(target, host, port); err != nil {
		return dst, err
	}
	dst = append(dst, "CONNECT "...)
	dst = append(dst, target...)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	if a, err := netip.ParseAddr(host); err == nil && a.Is6() {
		dst = append(dst, '[')
		dst = append(dst, host...)
		dst = append(dst, ']')
	} else {
		dst = append(dst, host...)
	}
	dst = append(dst, ':')
	dst = strconv.AppendInt(dst, int64(port), 10)
	return append(dst, "\r\n\r\n"...), nil
}

// checkConnect is AppendConnect's refusal, without writing anything.
func checkConnect(target, host string, port int) error {
	if !ValidAccessPath(target) {
		return ErrBadAccessPath
	}
	if !validHost(host) || port < 1 || port > 65535 {
		return ErrBadHost
	}
	return nil
}
