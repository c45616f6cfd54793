package web

// Lookup finds the response for a request: method and the raw path of the
// request target (no query). It returns the head and the body to send (the
// body is nil for HEAD); both are shared, never modify them. Nothing here
// ever redirects, so no Location header can point elsewhere (CVE-2021-3654).
func (s *Site) Lookup(method, rawPath []byte) (head, body []byte, err error) {
	switch string(method) {
	case "GET", "HEAD":
	default:
		return nil, nil, ErrMethod
	}
	name, err := cleanPath(rawPath)
	if err != nil {
		return nil, nil, err
	}
	f, ok := s.files[name]
	if !ok {
		return nil, nil, ErrNotFound
	}
	if string(method) == "HEAD" {
		return f.head, nil, nil
	}
	return f.head, f.body, nil
}

// cleanPath percent-decodes a request path strictly and refuses anything
// that is not a plain relative file name: empty segments ("//"), "." and
// ".." (also when percent-encoded), backslashes, NUL and other control
// bytes. The result has no leading '/'; "" (the root) is not servable.
func cleanPath(raw []byte) (string, error) {
	if len(raw) == 0 || raw[0] != '/' {
		return "", ErrBadPath
	}
	dec := make([]byte, 0, len(raw))
	for i := 1; i < len(raw); i++ {
		c := raw[i]
		if c == '%' {
			if i+2 >= len(raw) || unhex(raw[i+1]) < 0 || unhex(raw[i+2]) < 0 {
				return "", ErrBadPath
			}
			c = byte(unhex(raw[i+1])<<4 | unhex(raw[i+2]))
			i += 2
		}
		if c < 0x20 || c == 0x7f || c == '\\' {
			return "", ErrBadPath
		}
		dec = append(dec, c)
	}
	name := string(dec)
	if name == "" || name[len(name)-1] == '/' {
		return "", ErrNotFound // a directory: never listed
	}
	start := 0
	for i := 0; i <= len(name); i++ {
		if i == len(name) || name[i] == '/' {
			seg := name[start:i]
			if seg == "" || seg == "." || seg == ".." {
				return "", ErrBadPath
			}
			start = i + 1
		}
	}
	return name, nil
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
