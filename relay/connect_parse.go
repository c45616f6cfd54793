//go:build linux

package relay

import "fmt"

// Parser states: where the next byte of the head goes.
const (
	stStatus    uint8 = iota // the status line
	stLineStart              // the first byte of a field line, or CR of the blank line
	stName                   // a field name, up to ':'
	stValue                  // a field value, up to CR
)

// statusPrefix is how much of the status line is checked byte by byte:
// "HTTP/1.x NNN" (RFC 9112 §4); what follows is SP and the reason phrase.
const statusPrefix = len("HTTP/1.1 200")

// ConnectParser reads an answer to CONNECT incrementally, as bytes arrive
// (RFC 9112 §2-§5, RFC 9110 §9.3.6). The status line must be "HTTP/1.0" or
// "HTTP/1.1", SP, three digits, then SP and a reason phrase or the end of
// the line; only 2xx is success, so a "200" in a reason phrase is not. Lines
// end in CRLF. Field lines must be a token, ':' and a value without control
// bytes; obs-fold continuation lines are accepted and, like every value,
// ignored: in a 2xx answer Content-Length and Transfer-Encoding mean nothing
// (RFC 9110 §9.3.6), and every byte after the blank line is console data.
// The whole head is capped at MaxConnectAnswer bytes.
//
// The zero value is ready; it holds no buffer and Feed allocates nothing
// except for the error of a non-2xx answer.
type ConnectParser struct {
	status int
	code   int   // the status code's digits so far
	seen   int   // head bytes so far
	lineN  int   // bytes of the current line so far
	err    error // sticky: once failed, always failed
	state  uint8
	cr     bool // the last byte was CR: LF must follow
	fields bool // a field line was seen (an obs-fold may continue it)
	done   bool
}

// Status is the answer's status code once the status line has it complete
// (three digits followed by SP or CRLF), else 0.
func (p *ConnectParser) Status() int { return p.status }

// Feed consumes the next bytes of the answer. done reports that the head is
// complete; rest is then the part of b after it: console bytes, which belong
// to the client, in order and intact. rest aliases b, which is not retained.
// After done or an error, Feed returns the same outcome again (with no rest).
func (p *ConnectParser) Feed(b []byte) (done bool, rest []byte, err error) {
	if p.err != nil || p.done {
		return p.done, nil, p.err
	}
	for i, c := range b {
		if p.seen++; p.seen > MaxConnectAnswer {
			return false, nil, p.fail(ErrConnectTooLarge)
		}
		if err := p.byte(c); err != nil {
			return false, nil, p.fail(err)
		}
		if p.done {
			return true, b[i+1:], nil
		}
	}
	return false, nil, nil
}

func (p *ConnectParser) fail(err error) error {
	p.err = err
	return err
}

// byte takes one byte of the head.
func (p *ConnectParser) byte(c byte) error {
	if p.cr {
		if c != '\n' {
			return ErrConnectMalformed // CR must start CRLF (RFC 9112 §2.2)
		}
		p.cr = false
		return p.endLine()
	}
	if c == '\r' {
		p.cr = true
		return nil
	}
	switch p.state {
	case stStatus:
		return p.statusByte(c)
	case stLineStart:
		return p.lineStart(c)
	case stName:
		if c == ':' {
			p.state = stValue
			return nil
		}
		if !isTokenChar(c) {
			return ErrConnectMalformed // RFC 9112 §5.1: no space before ':'
		}
		return nil
	}
	return textByte(c)
}

// textByte accepts the bytes of a reason phrase or field value: HTAB, SP,
// VCHAR and obs-text (RFC 9112 §4, RFC 9110 §5.5), never CTLs or a bare LF.
func textByte(c byte) error {
	if c < ' ' && c != '\t' || c == 0x7f {
		return ErrConnectMalformed
	}
	return nil
}

// statusByte checks the status line as it arrives, so that a host that is
// not an HTTP endpoint is found out at its first wrong byte.
func (p *ConnectParser) statusByte(c byte) error {
	n := p.lineN
	p.lineN++
	switch {
	case n < len("HTTP/1."):
		if c != "HTTP/1."[n] {
			return ErrConnectMalformed
		}
	case n == len("HTTP/1."):
		if c != '0' && c != '1' {
			return ErrConnectMalformed
		}
	case n == len("HTTP/1.1"):
		if c != ' ' {
			return ErrConnectMalformed
		}
	case n < statusPrefix:
		if c < '0' || c > '9' {
			return ErrConnectMalformed
		}
		p.code = p.code*10 + int(c-'0')
	case n == statusPrefix:
		if c != ' ' {
			return ErrConnectMalformed // a fourth digit, or junk
		}
		return p.checkStatus()
	default:
		return textByte(c)
	}
	return nil
}

// checkStatus takes the code once it is complete (followed by SP or CRLF)
// and refuses it unless 2xx.
func (p *ConnectParser) checkStatus() error {
	p.status = p.code
	if p.status < 200 || p.status > 299 {
		return fmt.Errorf("%w: %d", ErrConnectRefused, p.status)
	}
	return nil
}

// lineStart takes the first byte of a line after the status line.
func (p *ConnectParser) lineStart(c byte) error {
	switch {
	case isTokenChar(c):
		p.state, p.fields = stName, true
	case (c == ' ' || c == '\t') && p.fields:
		p.state = stValue // obs-fold (RFC 9112 §5.2): part of the value, ignored
	default:
		return ErrConnectMalformed // RFC 9112 §2.2: whitespace before the first field
	}
	return nil
}

// endLine handles a CRLF.
func (p *ConnectParser) endLine() error {
	switch p.state {
	case stStatus:
		if p.lineN < statusPrefix {
			return ErrConnectMalformed
		}
		if p.lineN == statusPrefix { // no reason phrase, not even its SP
			if err := p.checkStatus(); err != nil {
				return err
			}
		}
	case stLineStart:
		p.done = true
	case stName:
		return ErrConnectMalformed // a field line without ':'
	}
	p.state, p.lineN = stLineStart, 0
	return nil
}

// isTokenChar reports whether c is a tchar (RFC 9110 §5.6.2).
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}
