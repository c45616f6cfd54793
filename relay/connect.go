package relay

import (
	"errors"
	"fmt"
	"strconv"
)

// Limits of the CONNECT exchange with a compute host (Nova's
// internal_access_path): the request target's length and the answer's head.
const (
	MaxAccessPath     = 1024
	MaxConnectAnswer  = 8 << 10
	connectAnswerRead = 4 << 10 // one read while waiting for the answer
)

// Errors of the CONNECT exchange; each is a distinct result in the metrics.
var (
	ErrBadAccessPath    = errors.New("internal_access_path is not a valid request target")
	ErrConnectRefused   = errors.New("CONNECT answered with a non-2xx status")
	ErrConnectMalformed = errors.New("malformed CONNECT answer")
	ErrConnectTooLarge  = errors.New("CONNECT answer head too large")
	ErrConnectClosed    = errors.New("compute host closed during CONNECT")
	ErrConnectTimeout   = errors.New("CONNECT answer timed out")
)

// ValidAccessPath reports whether p is an origin-form request target
// (RFC 9112 §3.2.1: absolute-path [ "?" query ]) made only of RFC 3986 path
// and query characters: no CR, LF, SP, other control bytes or non-ASCII, at
// most MaxAccessPath bytes. Percent-escapes must be well formed and are
// passed through, never decoded.
func ValidAccessPath(p string) bool {
	if len(p) == 0 || len(p) > MaxAccessPath || p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '%':
			if i+2 >= len(p) || !isHexDigit(p[i+1]) || !isHexDigit(p[i+2]) {
				return false
			}
			i += 2
		case c == '?': // the query: the same characters, '/' and '?' (RFC 3986 §3.4)
		case isPathChar(c), c == '/':
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

// AppendConnect appends exactly "CONNECT <target> HTTP/1.1", a Host header
// naming host:port, and the blank line. target must have passed
// ValidAccessPath; host is the compute host from the token record.
func AppendConnect(dst []byte, target, host string, port int) []byte {
	dst = append(dst, "CONNECT "...)
	dst = append(dst, target...)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	if needsBrackets(host) {
		dst = append(dst, '[')
		dst = append(dst, host...)
		dst = append(dst, ']')
	} else {
		dst = append(dst, host...)
	}
	dst = append(dst, ':')
	dst = strconv.AppendInt(dst, int64(port), 10)
	return append(dst, "\r\n\r\n"...)
}

func needsBrackets(host string) bool {
	for i := 0; i < len(host); i++ {
		if host[i] == ':' {
			return true
		}
	}
	return false
}

// ConnectParser reads a CONNECT answer incrementally. The status line must be
// "HTTP/1.0" or "HTTP/1.1", a space, three digits and a space or the end of
// the line; only 2xx is success (a "200" in a reason phrase is not). Header
// fields are skipped unread: in a 2xx answer Content-Length and
// Transfer-Encoding mean nothing (RFC 9110 §9.3.6), and every byte after the
// blank line is console data.
type ConnectParser struct {
	line   [256]byte // the status line as it arrives
	lineN  int
	status int
	seen   int  // head bytes so far
	state  int8 // 0 status line, 1 headers (at line start), 2 inside a header line
	cr     bool // the last byte was CR
}

// Status is the answer's status code once the status line is complete.
func (p *ConnectParser) Status() int { return p.status }

// Feed consumes bytes of the answer. done reports that the head is complete;
// rest is then the part of b after it: console bytes, which belong to the
// client, in order and intact. b is not retained.
func (p *ConnectParser) Feed(b []byte) (done bool, rest []byte, err error) {
	for i := 0; i < len(b); i++ {
		c := b[i]
		p.seen++
		if p.seen > MaxConnectAnswer {
			return false, nil, ErrConnectTooLarge
		}
		if p.cr {
			p.cr = false
			if c != '\n' {
				return false, nil, ErrConnectMalformed
			}
			end, err := p.endLine()
			if err != nil {
				return false, nil, err
			}
			if end {
				return true, b[i+1:], nil
			}
			continue
		}
		if c == '\r' {
			p.cr = true
			continue
		}
		if c == '\n' {
			return false, nil, ErrConnectMalformed // bare LF: be strict
		}
		if err := p.byteOfLine(c); err != nil {
			return false, nil, err
		}
	}
	return false, nil, nil
}

// byteOfLine takes one byte that is not CR or LF.
func (p *ConnectParser) byteOfLine(c byte) error {
	switch p.state {
	case 0:
		if p.lineN == len(p.line) {
			return ErrConnectMalformed
		}
		p.line[p.lineN] = c
		p.lineN++
	case 1:
		p.state = 2
	}
	if c < 0x20 && c != '\t' || c == 0x7f {
		return ErrConnectMalformed
	}
	return nil
}

// endLine handles CRLF: after the status line it checks it; after an empty
// header line the head is done.
func (p *ConnectParser) endLine() (bool, error) {
	switch p.state {
	case 0:
		if err := p.checkStatus(); err != nil {
			return false, err
		}
		if p.status < 200 || p.status > 299 {
			return false, fmt.Errorf("%w: %d", ErrConnectRefused, p.status)
		}
		p.state = 1
		return false, nil
	case 1:
		return true, nil
	}
	p.state = 1
	return false, nil
}

func (p *ConnectParser) checkStatus() error {
	l := p.line[:p.lineN]
	if len(l) < 12 || (string(l[:9]) != "HTTP/1.1 " && string(l[:9]) != "HTTP/1.0 ") {
		return ErrConnectMalformed
	}
	code := l[9:12]
	for _, d := range code {
		if d < '0' || d > '9' {
			return ErrConnectMalformed
		}
	}
	if len(l) > 12 && l[12] != ' ' {
		return ErrConnectMalformed
	}
	p.status = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	return nil
}
