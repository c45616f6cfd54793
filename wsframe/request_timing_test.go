package wsframe

import (
	"bytes"
	"testing"
)

// The typical handshake: parse, check, choose the subprotocol.
func BenchmarkParseRequestNoVNC(b *testing.B) {
	buf := []byte(noVNCRequest)
	var p RequestParser
	r := new(Request)
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		p.Reset()
		if _, err := p.Parse(buf, RequestLimits{}, r); err != nil {
			b.Fatal(err)
		}
		if err := r.CheckUpgrade(); err != nil || ChooseProtocol(r) == nil {
			b.Fatal(err)
		}
	}
}

// The worst arrival: one byte per read, Parse called after each.
func BenchmarkParseRequestByteByByte(b *testing.B) {
	buf := []byte(noVNCRequest)
	var p RequestParser
	r := new(Request)
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		p.Reset()
		for i := 1; i <= len(buf); i++ {
			if _, err := p.Parse(buf[:i], RequestLimits{}, r); err != ErrIncomplete && err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkAppendSwitching(b *testing.B) {
	key := []byte("dGhlIHNhbXBsZSBub25jZQ==")
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		dst = AppendSwitching(dst[:0], key, ProtocolBinary)
	}
}

func BenchmarkBase64(b *testing.B) {
	plain := bytes.Repeat([]byte{0, 1, 2, 0xff, 0x80, 'x'}, 16384/6)
	enc := AppendBase64(nil, plain)
	dst := make([]byte, 0, len(enc))
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(plain)))
		for b.Loop() {
			dst = AppendBase64(dst[:0], plain)
		}
	})
	b.Run("decode", func(b *testing.B) {
		var d Base64Decoder
		b.ReportAllocs()
		b.SetBytes(int64(len(plain)))
		for b.Loop() {
			dst, _ = d.Decode(dst[:0], enc[:1001])
			dst, _ = d.Decode(dst, enc[1001:])
			if d.End() != nil {
				b.Fatal("bad")
			}
		}
	})
}
