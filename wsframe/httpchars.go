package wsframe

import "bytes"

// byteSet is a read-only table of allowed bytes.
type byteSet [256]bool

func makeSet(extra string) *byteSet {
	var s byteSet
	for c := '0'; c <= '9'; c++ {
		s[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		s[c], s[c-'a'+'A'] = true, true
	}
	for i := range len(extra) {
		s[extra[i]] = true
	}
	return &s
}

var (
	// tchar of RFC 9110 §5.6.2.
	tokenSet = makeSet("!#$%&'*+-.^_`|~")
	// reg-name of RFC 3986 §3.2.2: unreserved, sub-delims and '%'.
	regNameSet = makeSet("-._~!$&'()*+,;=%")
	// The inside of an IPv6 literal (RFC 3986 §3.2.2), loosely.
	ipLiteralSet = makeSet(":.")
)

func (s *byteSet) all(b []byte) bool {
	for _, c := range b {
		if !s[c] {
			return false
		}
	}
	return true
}

// isToken reports whether b is a non-empty token (RFC 9110 §5.6.2).
func isToken(b []byte) bool { return len(b) > 0 && tokenSet.all(b) }

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isOWS reports whether c is optional whitespace (RFC 9110 §5.6.3).
func isOWS(c byte) bool { return c == ' ' || c == '\t' }

// trimOWS returns b without leading and trailing SP and HT; a slice of b.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && isOWS(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isOWS(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold reports whether b equals s, ignoring ASCII case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(s) {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// validHost reports whether b is uri-host [ ":" port ] (RFC 9112 §3.2,
// RFC 3986 §3.2.2) with a non-empty host and, when the colon is there, a port
// of 1 to 5 digits. IPv6 literals are checked loosely (letters, digits, ':' and '.').
func validHost(b []byte) bool {
	host, port, hasPort := b, []byte(nil), false
	if len(b) > 0 && b[0] == '[' {
		end := bytes.IndexByte(b, ']')
		if end < 2 || !ipLiteralSet.all(b[1:end]) {
			return false
		}
		host = b[:end+1]
		if rest := b[end+1:]; len(rest) > 0 {
			if rest[0] != ':' {
				return false
			}
			port, hasPort = rest[1:], true
		}
	} else {
		if c := bytes.IndexByte(b, ':'); c >= 0 {
			host, port, hasPort = b[:c], b[c+1:], true
		}
		if !regNameSet.all(host) {
			return false
		}
	}
	return len(host) > 0 && (!hasPort || validPort(port))
}

func validPort(p []byte) bool {
	if len(p) == 0 || len(p) > 5 {
		return false
	}
	for _, c := range p {
		if !isDigit(c) {
			return false
		}
	}
	return true
}
