package wsframe

import (
	"bytes"
	"errors"
	"strconv"
)

// HardMaxHeaders is the most header fields a Request can hold, whatever the
// limits say: Request keeps them in a fixed array.
const HardMaxHeaders = 128

// Defaults for the zero fields of RequestLimits.
const (
	DefaultMaxRequestLine = 8192
	DefaultMaxHeaderBytes = 16384
	DefaultMaxHeaders     = 64
)

// RequestLimits are the hard caps on a request head. Zero fields take the
// defaults; exceeding any of them is a 431.
type RequestLimits struct {
	MaxRequestLine int // bytes in the request line incl. CRLF; default 8192
	MaxHeaderBytes int // bytes of the whole head (request line, headers, blank line); default 16384
	MaxHeaders     int // number of header fields; default 64, never more than HardMaxHeaders
}

func (l RequestLimits) withDefaults() RequestLimits {
	if l.MaxRequestLine <= 0 {
		l.MaxRequestLine = DefaultMaxRequestLine
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if l.MaxHeaders <= 0 {
		l.MaxHeaders = DefaultMaxHeaders
	}
	l.MaxHeaders = min(l.MaxHeaders, HardMaxHeaders)
	return l
}

// HTTPError is a request the proxy refuses before the upgrade, with the HTTP
// status to answer (see AppendError). Reason is a short fixed phrase for logs;
// it never contains bytes from the request.
type HTTPError struct {
	Status int
	Reason string
}

func (e *HTTPError) Error() string { return "http " + strconv.Itoa(e.Status) + ": " + e.Reason }

// ErrIncomplete means the request head has not fully arrived yet: call Parse
// again when more bytes are in.
var ErrIncomplete = errors.New("incomplete request head")

func badRequest(reason string) *HTTPError { return &HTTPError{400, reason} }

// The refusals Parse reports. Each is a fixed value, so returning one does not
// allocate.
var (
	errLineTooLong   = &HTTPError{431, "request line too long"}
	errHeadTooLarge  = &HTTPError{431, "request head too large"}
	errTooManyFields = &HTTPError{431, "too many header fields"}
	// RFC 9112 §2.2: a recipient of a bare CR or LF may reject the message.
	errBareLF        = badRequest("line not ended by CRLF")
	errRequestLine   = badRequest("malformed request line")
	errMethod        = badRequest("invalid request method")
	errTarget        = badRequest("invalid request target")
	errVersion       = badRequest("unsupported HTTP version")
	errObsFold       = badRequest("obsolete line folding")     // RFC 9112 §5.2
	errNoColon       = badRequest("header line without colon") // RFC 9112 §5
	errEmptyName     = badRequest("empty header name")
	errSpaceColon    = badRequest("whitespace before colon") // RFC 9112 §5.1
	errFieldName     = badRequest("invalid header name")     // RFC 9110 §5.1
	errFieldValue    = badRequest("control byte in header value")
	errMissingHost   = badRequest("missing Host header") // RFC 9112 §3.2
	errInvalidHost   = badRequest("invalid Host header")
	errDupHost       = badRequest("duplicate Host header")
	errDupOrigin     = badRequest("duplicate Origin header")
	errDupKey        = badRequest("duplicate Sec-WebSocket-Key header")
	errDupVersion    = badRequest("duplicate Sec-WebSocket-Version header")
	errDupUpgrade    = badRequest("duplicate Upgrade header")
	errParserMisused = &HTTPError{500, "request buffer shrank"}
)

// Header is one header field. Name and Value are slices of the buffer given
// to Parse (borrowed: valid while it is); Value has its optional whitespace
// trimmed.
type Header struct{ Name, Value []byte }

// Request is a parsed request head. Every slice points into the buffer given
// to Parse and is valid only while that buffer is. A Request is large (it
// holds HardMaxHeaders fields inline) and must not be copied after Parse:
// Headers points into the Request itself.
type Request struct {
	// Method, Target and Proto are the three parts of the request line.
	// Target is the request target exactly as sent; Proto is "HTTP/1.1".
	Method, Target, Proto []byte
	// Host is the Host header, or for an absolute-form target its authority
	// (RFC 9112 §3.2.2; the Host header is still required). Origin, Key
	// (Sec-WebSocket-Key), Version (Sec-WebSocket-Version) and Upgrade are the
	// headers that may appear at most once; Connection is the first
	// Connection header (there may be several, see Values). nil if absent.
	Host, Origin, Key, Version, Upgrade, Connection []byte
	// HasOrigin tells an absent Origin from an empty one.
	HasOrigin bool
	// Headers holds every header field in order, backed by hdrs.
	Headers []Header

	authStart int // offset in Target of an absolute-form authority, else 0
	pathStart int // offset in Target where the path begins
	hdrs      [HardMaxHeaders]Header
}

// RequestParser finds the end of a request head as its bytes arrive. Its zero
// value is ready to use; Reset makes it ready for another request.
type RequestParser struct {
	scanned int   // bytes of buf already searched for '\n'
	line    int   // offset where the current line starts
	fields  int   // header lines seen so far
	end     int   // length of the head once found, else 0
	err     error // sticky refusal
}

// Reset forgets all state, for the next request.
func (p *RequestParser) Reset() { *p = RequestParser{} }

// Parse is called each time more bytes have arrived, with all the bytes
// received so far: buf grows from call to call, its earlier bytes do not
// change, and lim stays the same. Each call only scans the bytes it has not
// seen before, and the caps in lim are checked on what has arrived, so an
// overlong line is refused before its end comes.
//
// While the head is incomplete Parse returns 0, ErrIncomplete. On success n is
// the length of the head including its blank line; bytes after it (pipelined
// WebSocket frames) are neither read nor touched. req is then filled with
// slices of buf, borrowed: valid while buf is. A refusal is a *HTTPError
// (req is then undefined) and is returned again by later calls until Reset.
// Parse never modifies buf.
func (p *RequestParser) Parse(buf []byte, lim RequestLimits, req *Request) (n int, err error) {
	if p.err != nil {
		return 0, p.err
	}
	if len(buf) < p.scanned {
		p.err = errParserMisused
		return 0, p.err
	}
	if p.end == 0 {
		if err := p.scan(buf, lim.withDefaults()); err != nil {
			p.err = err
			return 0, err
		}
		if p.end == 0 {
			return 0, ErrIncomplete
		}
	}
	if err := req.parse(buf[:p.end]); err != nil {
		p.err = err
		return 0, err
	}
	return p.end, nil
}

// scan searches the new bytes of buf for line ends until it finds the blank
// line that ends the head, a cap is exceeded, or the bytes run out.
func (p *RequestParser) scan(buf []byte, lim RequestLimits) error {
	for {
		capEnd, capErr := lim.MaxHeaderBytes, errHeadTooLarge
		if p.line == 0 && lim.MaxRequestLine < capEnd {
			capEnd, capErr = lim.MaxRequestLine, errLineTooLong
		}
		if p.scanned > capEnd {
			return capErr // the caller lowered the limits between calls
		}
		limit := min(len(buf), capEnd)
		i := bytes.IndexByte(buf[p.scanned:limit], '\n')
		if i < 0 {
			p.scanned = limit
			if limit == capEnd {
				return capErr // capEnd bytes and the line (or head) still open
			}
			return nil
		}
		p.scanned += i + 1
		if err := p.endLine(buf, p.scanned-1, lim); err != nil || p.end > 0 {
			return err
		}
	}
}

// endLine handles the line ending with the '\n' at buf[i].
func (p *RequestParser) endLine(buf []byte, i int, lim RequestLimits) error {
	if i == 0 || buf[i-1] != '\r' {
		return errBareLF
	}
	switch {
	case p.line == 0:
		if i == 1 {
			return errRequestLine // no empty lines before the request line
		}
	case i-p.line == 1:
		p.end = i + 1
		return nil
	default:
		if p.fields++; p.fields > lim.MaxHeaders {
			return errTooManyFields
		}
	}
	p.line = i + 1
	return nil
}

// parse fills r from a complete head whose lines all end in CRLF.
func (r *Request) parse(head []byte) error {
	r.reset()
	i := bytes.IndexByte(head, '\n')
	if err := r.parseRequestLine(head[:i-1]); err != nil {
		return err
	}
	for rest := head[i+1:]; len(rest) > 2; {
		i = bytes.IndexByte(rest, '\n')
		if err := r.parseField(rest[:i-1]); err != nil {
			return err
		}
		rest = rest[i+1:]
	}
	if r.Host == nil {
		return errMissingHost
	}
	if r.pathStart > 0 {
		r.Host = r.Target[r.authStart:r.pathStart] // RFC 9112 §3.2.2
	}
	return nil
}

func (r *Request) reset() {
	clear(r.hdrs[:len(r.Headers)])
	r.Method, r.Target, r.Proto = nil, nil, nil
	r.Host, r.Origin, r.Key, r.Version, r.Upgrade, r.Connection = nil, nil, nil, nil, nil, nil
	r.HasOrigin, r.authStart, r.pathStart = false, 0, 0
	r.Headers = r.hdrs[:0]
}

// parseRequestLine checks METHOD SP TARGET SP HTTP/1.1 (RFC 9112 §3).
func (r *Request) parseRequestLine(line []byte) error {
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 < 0 {
		return errRequestLine
	}
	sp2 := bytes.IndexByte(line[sp1+1:], ' ')
	if sp2 < 0 {
		return errRequestLine
	}
	sp2 += sp1 + 1
	r.Method, r.Target, r.Proto = line[:sp1], line[sp1+1:sp2], line[sp2+1:]
	if !isToken(r.Method) {
		return errMethod
	}
	auth, path, ok := targetParts(r.Target)
	if !ok {
		return errTarget
	}
	r.authStart, r.pathStart = auth, path
	return checkProto(r.Proto)
}

// checkProto accepts HTTP/1.1 only: WebSocket needs it (RFC 6455 §4.1).
func checkProto(p []byte) error {
	if len(p) != 8 || string(p[:5]) != "HTTP/" || !isDigit(p[5]) || p[6] != '.' || !isDigit(p[7]) {
		return errRequestLine // RFC 9112 §2.3: HTTP-version is case-sensitive
	}
	if p[5] != '1' || p[7] != '1' {
		return errVersion
	}
	return nil
}

// targetParts validates a request target (RFC 9112 §3.2) and returns where
// its authority (0 if none) and its path begin: origin-form "/path?query", or absolute-form
// "scheme://authority/path?query" with scheme http, https, ws or wss and a
// non-empty path. No control bytes, spaces, '#' or bytes >= 0x7f.
func targetParts(t []byte) (auth, path int, ok bool) {
	for _, c := range t {
		if c <= ' ' || c >= 0x7f || c == '#' {
			return 0, 0, false
		}
	}
	if len(t) > 0 && t[0] == '/' {
		return 0, 0, true
	}
	colon := bytes.IndexByte(t, ':')
	if colon < 0 || !knownScheme(t[:colon]) || !bytes.HasPrefix(t[colon:], []byte("://")) {
		return 0, 0, false
	}
	auth = colon + 3
	slash := bytes.IndexByte(t[auth:], '/')
	if slash < 0 || !validHost(t[auth:auth+slash]) {
		return 0, 0, false // '@' (user info, RFC 9110 §4.2.4) and '?' fail validHost
	}
	return auth, auth + slash, true
}

func knownScheme(s []byte) bool {
	return equalFold(s, "http") || equalFold(s, "https") || equalFold(s, "ws") || equalFold(s, "wss")
}

// parseField parses one header line (without CRLF) into r.Headers.
func (r *Request) parseField(line []byte) error {
	if line[0] == ' ' || line[0] == '\t' {
		return errObsFold
	}
	colon := bytes.IndexByte(line, ':')
	switch {
	case colon < 0:
		return errNoColon
	case colon == 0:
		return errEmptyName
	case isOWS(line[colon-1]):
		return errSpaceColon
	case !isToken(line[:colon]):
		return errFieldName
	}
	value := line[colon+1:]
	for _, c := range value {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return errFieldValue // RFC 9110 §5.5
		}
	}
	h := Header{Name: line[:colon], Value: trimOWS(value)}
	r.Headers = append(r.Headers, h) // within hdrs: the scan capped the count
	return r.noteSingleton(h)
}

// noteSingleton records the headers Request has a field for, refusing a
// second Host (RFC 9112 §3.2), Origin, Key, Version or Upgrade.
func (r *Request) noteSingleton(h Header) error {
	n := h.Name
	switch {
	case equalFold(n, "Host"):
		if !validHost(h.Value) {
			return errInvalidHost
		}
		return setOnce(&r.Host, h.Value, errDupHost)
	case equalFold(n, "Origin"):
		r.HasOrigin = true
		return setOnce(&r.Origin, h.Value, errDupOrigin)
	case equalFold(n, "Sec-WebSocket-Key"):
		return setOnce(&r.Key, h.Value, errDupKey)
	case equalFold(n, "Sec-WebSocket-Version"):
		return setOnce(&r.Version, h.Value, errDupVersion)
	case equalFold(n, "Upgrade"):
		return setOnce(&r.Upgrade, h.Value, errDupUpgrade)
	case equalFold(n, "Connection"):
		if r.Connection == nil {
			r.Connection = h.Value
		}
	}
	return nil
}

// setOnce stores v in *dst, or returns dup if a value is already there. v is
// never nil: it is a slice of the head.
func setOnce(dst *[]byte, v []byte, dup error) error {
	if *dst != nil {
		return dup
	}
	*dst = v
	return nil
}

// Path returns the path of Target: up to '?', without the scheme and
// authority of an absolute-form target. It is a slice of Target and always
// starts with '/' after a successful Parse.
func (r *Request) Path() []byte {
	t := r.Target[r.pathStart:]
	if q := bytes.IndexByte(t, '?'); q >= 0 {
		return t[:q]
	}
	return t
}

// Query returns what follows the first '?' of Target (without the '?'), or
// nil if there is none. It is a slice of Target.
func (r *Request) Query() []byte {
	if q := bytes.IndexByte(r.Target, '?'); q >= 0 {
		return r.Target[q+1:]
	}
	return nil
}

// Values calls fn with the value of each header named name (compared
// case-insensitively), in order. The values are borrowed like all of r.
func (r *Request) Values(name string, fn func(v []byte)) {
	for _, h := range r.Headers {
		if equalFold(h.Name, name) {
			fn(h.Value)
		}
	}
}
