package wsframe

import (
	"bytes"
	"testing"
)

// within fails t unless s, when not nil, is a slice of buf[:n].
func within(t *testing.T, what string, buf []byte, n int, s []byte) {
	t.Helper()
	if s == nil {
		return
	}
	off := cap(buf) - cap(s)
	if off < 0 || off+len(s) > n || (len(s) > 0 && &buf[off] != &s[0]) {
		t.Fatalf("%s %q is not within the head (%d bytes)", what, s, n)
	}
}

func checkWithinHead(t *testing.T, buf []byte, n int, r *Request) {
	for _, f := range []struct {
		what string
		s    []byte
	}{
		{"method", r.Method}, {"target", r.Target}, {"proto", r.Proto}, {"host", r.Host},
		{"origin", r.Origin}, {"key", r.Key}, {"version", r.Version}, {"upgrade", r.Upgrade},
		{"connection", r.Connection}, {"path", r.Path()}, {"query", r.Query()},
	} {
		within(t, f.what, buf, n, f.s)
	}
	for _, h := range r.Headers {
		within(t, "name", buf, n, h.Name)
		within(t, "value", buf, n, h.Value)
	}
	r.Protocols(func(p []byte) bool { within(t, "protocol", buf, n, p); return true })
}

// FuzzParseRequest parses each input whole and as growing prefixes cut at
// fuzzer-chosen points, under fuzzer-chosen limits, and requires the same
// result. It never panics, never writes to the buffer, and a parsed head lies
// within buf[:n].
func FuzzParseRequest(f *testing.F) {
	for _, tc := range parseCases {
		f.Add([]byte(tc.input), []byte{7, 40}, uint16(0), uint16(0), uint8(0))
	}
	f.Add([]byte(noVNCRequest), []byte{200, 1, 1}, uint16(80), uint16(600), uint8(14))
	f.Add([]byte(rfcHandshake+"\x82\x80abcd"), []byte{255, 255}, uint16(17), uint16(0), uint8(2))
	f.Fuzz(func(t *testing.T, input, splits []byte, maxLine, maxHead uint16, maxFields uint8) {
		lim := RequestLimits{MaxRequestLine: int(maxLine), MaxHeaderBytes: int(maxHead), MaxHeaders: int(maxFields)}
		orig := bytes.Clone(input)
		n, r, err := parseWhole(input, lim)
		whole := describe(n, r, err)
		if n < 0 || n > len(input) || (err != nil && n != 0) {
			t.Fatalf("n=%d of %d, err %v", n, len(input), err)
		}
		if s := statusOf(err); s != 0 && s != -1 && s != 400 && s != 431 {
			t.Fatalf("unexpected error %v", err)
		}
		if err == nil {
			checkWithinHead(t, input, n, r)
			_ = r.CheckUpgrade()
			_ = ChooseProtocol(r)
			_ = r.IsUpgrade()
		}
		var cuts []int
		at := 0
		for _, s := range splits {
			at += int(s)
			cuts = append(cuts, at)
		}
		if split := describe(parseGrowing(t, input, lim, cuts)); split != whole {
			t.Fatalf("cuts %v:\n%s\nwhole:\n%s", cuts, split, whole)
		}
		if !bytes.Equal(input, orig) {
			t.Fatal("Parse modified its buffer")
		}
	})
}
