package policy

// MaxTokenLen is the longest token accepted, in bytes after decoding. Nova's
// tokens are UUIDs (36 bytes) and the embedded store's are 43; 256 leaves
// room for other issuers while keeping a hostile value from costing more
// than a hash of 256 bytes.
const MaxTokenLen = 256

// QueryToken returns the value of the first non-empty `token` parameter in a
// raw query (the part after '?', without it), percent-decoded with '+' as a
// space, as Nova does (parse_qs ignores blank values). ok is false when
// there is none, or the value has a malformed escape or is too long.
//
// The result is a subslice of query when no decoding is needed (no
// allocation), else a new slice.
func QueryToken(query []byte) (token []byte, ok bool) {
	for len(query) > 0 {
		var pair []byte
		pair, query = cut(query, '&')
		name, value := cut(pair, '=')
		if string(name) != "token" || len(value) == 0 {
			continue
		}
		v, ok := unescape(value)
		if !ok || len(v) == 0 || len(v) > MaxTokenLen {
			return nil, false
		}
		return v, true
	}
	return nil, false
}

// cut splits b at the first sep; the separator is dropped.
func cut(b []byte, sep byte) (before, after []byte) {
	for i, c := range b {
		if c == sep {
			return b[:i], b[i+1:]
		}
	}
	return b, nil
}

// unescape decodes %XX and '+' (application/x-www-form-urlencoded).
func unescape(v []byte) ([]byte, bool) {
	clean := true
	for _, c := range v {
		if c == '%' || c == '+' {
			clean = false
			break
		}
	}
	if clean {
		return v, true
	}
	out := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '+':
			out = append(out, ' ')
		case '%':
			if i+2 >= len(v) || !isHex(v[i+1]) || !isHex(v[i+2]) {
				return nil, false
			}
			out = append(out, unhex(v[i+1])<<4|unhex(v[i+2]))
			i += 2
		default:
			out = append(out, c)
		}
	}
	return out, true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
