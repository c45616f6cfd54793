package wsframe

import (
	"crypto/sha1"
	"encoding/base64"
	"strconv"
)

// acceptGUID is appended to the key before hashing (RFC 6455 §1.3, §4.2.2).
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// AcceptLen is the length of a Sec-WebSocket-Accept value: base64 of a SHA-1.
const AcceptLen = 28

// AppendAccept appends Sec-WebSocket-Accept for key, the raw
// Sec-WebSocket-Key value: base64(SHA-1(key + GUID)) (RFC 6455 §4.2.2). key
// is not retained. It does not allocate when dst has room and key is at most
// 64 bytes (a valid key has 24).
func AppendAccept(dst, key []byte) []byte {
	var scratch [64 + len(acceptGUID)]byte
	sum := sha1.Sum(append(append(scratch[:0], key...), acceptGUID...))
	dst = grow(dst, AcceptLen)
	base64.StdEncoding.Encode(dst[len(dst):len(dst)+AcceptLen], sum[:])
	return dst[:len(dst)+AcceptLen]
}

// AppendSwitching appends the 101 Switching Protocols response to dst for key
// (the raw Sec-WebSocket-Key value) and returns it. A nil protocol sends no
// Sec-WebSocket-Protocol header; otherwise it must be a token (ChooseProtocol
// gives one). key and protocol are copied, not retained. It does not allocate
// when dst has room (about 160 bytes).
func AppendSwitching(dst, key, protocol []byte) []byte {
	dst = append(dst, "HTTP/1.1 101 Switching Protocols\r\n"+
		"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	dst = AppendAccept(dst, key)
	if protocol != nil {
		dst = append(dst, "\r\nSec-WebSocket-Protocol: "...)
		dst = append(dst, protocol...)
	}
	return append(dst, "\r\n\r\n"...)
}

// grow returns dst with room for n more bytes.
func grow(dst []byte, n int) []byte {
	if cap(dst)-len(dst) >= n {
		return dst
	}
	return append(dst, make([]byte, n)...)[:len(dst)]
}

// errorTexts are the statuses AppendError knows, with their reason phrase
// and body text.
var errorTexts = map[int][2]string{
	400: {"Bad Request", "bad request\n"},
	403: {"Forbidden", "forbidden\n"},
	404: {"Not Found", "not found\n"},
	405: {"Method Not Allowed", "method not allowed\n"},
	426: {"Upgrade Required", "upgrade required\n"},
	429: {"Too Many Requests", "too many requests\n"}, // RFC 6585 §4: a per-address limit
	431: {"Request Header Fields Too Large", "request header fields too large\n"},
	500: {"Internal Server Error", "internal server error\n"},
	502: {"Bad Gateway", "bad gateway\n"},
	503: {"Service Unavailable", "service unavailable\n"},
	504: {"Gateway Timeout", "gateway timeout\n"},
}

// errorResponses holds the complete response for each status of errorTexts,
// built once: they never change.
var errorResponses = buildErrorResponses()

func buildErrorResponses() map[int]string {
	m := make(map[int]string, len(errorTexts))
	for status, t := range errorTexts {
		s := "HTTP/1.1 " + strconv.Itoa(status) + " " + t[0] + "\r\n" +
			"Content-Type: text/plain; charset=utf-8\r\n" +
			"Content-Length: " + strconv.Itoa(len(t[1])) + "\r\n" +
			"Connection: close\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
		switch status {
		case 426:
			s += "Sec-WebSocket-Version: 13\r\n" // RFC 6455 §4.2.2
		case 405:
			s += "Allow: GET, HEAD\r\n" // RFC 9110 §15.5.6
		}
		m[status] = s + "\r\n" + t[1]
	}
	return m
}

// AppendError appends to dst a complete error response for status, with a
// short generic text body and Connection: close, and returns it. Statuses
// 400, 403, 404, 405, 426, 429, 431, 500, 502, 503 and 504 are known; any other
// gets the 500 response. It does not allocate when dst has room (about 250
// bytes).
func AppendError(dst []byte, status int) []byte {
	s, ok := errorResponses[status]
	if !ok {
		s = errorResponses[500]
	}
	return append(dst, s...)
}
