package policy

// CookieToken returns the value of the first well-formed cookie named
// `token` across the Cookie header values given (RFC 6265 §4.2.1, parsed as
// §5.4 does: pairs separated by ';' and optional whitespace). The value may be
// in double quotes, which are stripped. A malformed pair anywhere is skipped:
// it never hides a good `token` pair elsewhere (docs/contract.md). The result is a
// subslice of a header value; nothing is allocated and nothing is logged.
func CookieToken(headers [][]byte) (token []byte, ok bool) {
	for _, h := range headers {
		for len(h) > 0 {
			var pair []byte
			pair, h = cut(h, ';')
			name, value, good := cookiePair(trimOWS(pair))
			if good && string(name) == "token" && len(value) > 0 && len(value) <= MaxTokenLen {
				return value, true
			}
		}
	}
	return nil, false
}

// cookiePair splits and checks one cookie-pair (RFC 6265 §4.1.1).
func cookiePair(p []byte) (name, value []byte, ok bool) {
	name, value = cut(p, '=')
	if len(name) == len(p) || len(name) == 0 || !isToken(name) {
		return nil, nil, false
	}
	if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
		value = value[1 : len(value)-1]
	}
	for _, c := range value {
		if !isCookieOctet(c) {
			return nil, nil, false
		}
	}
	return name, value, true
}

// isCookieOctet: %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E.
func isCookieOctet(c byte) bool {
	return c == 0x21 || (c >= 0x23 && c <= 0x2B) || (c >= 0x2D && c <= 0x3A) ||
		(c >= 0x3C && c <= 0x5B) || (c >= 0x5D && c <= 0x7E)
}

// isToken reports whether b is an RFC 9110 §5.6.2 token.
func isToken(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f {
			return false
		}
		switch c {
		case '(', ')', '<', '>', '@', ',', ';', ':', '\\', '"', '/', '[', ']', '?', '=', '{', '}':
			return false
		}
	}
	return len(b) > 0
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}
