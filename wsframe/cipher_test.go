package wsframe

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

// naiveUnmask is the RFC 6455 §5.3 definition: j = i MOD 4; out[i] = in[i] XOR key[j].
func naiveUnmask(p []byte, key [4]byte, pos int) {
	for i := range p {
		p[i] ^= key[(pos+i)%4]
	}
}

// Unmask matches the naive definition over every offset and length up to a
// few hundred bytes, at every key position, and chains across pieces.
func TestUnmaskMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	src := make([]byte, 512)
	for i := range src {
		src[i] = byte(r.Uint32())
	}
	key := [4]byte{0xde, 0xad, 0xbe, 0xef}
	for off := 0; off < 16; off++ {
		for n := 0; n <= 300; n++ {
			for pos := 0; pos < 4; pos++ {
				got := append([]byte(nil), src[off:off+n]...)
				want := append([]byte(nil), got...)
				if next := Unmask(got, key, pos); next != (pos+n)%4 {
					t.Fatalf("off %d n %d pos %d: next %d", off, n, pos, next)
				}
				naiveUnmask(want, key, pos)
				if !bytes.Equal(got, want) {
					t.Fatalf("off %d n %d pos %d differs", off, n, pos)
				}
			}
		}
	}
	// In pieces with the returned position: the same as whole.
	whole := append([]byte(nil), src...)
	naiveUnmask(whole, key, 0)
	pieces := append([]byte(nil), src...)
	pos := 0
	for i := 0; i < len(pieces); {
		k := min(1+r.IntN(37), len(pieces)-i)
		pos = Unmask(pieces[i:i+k], key, pos)
		i += k
	}
	if !bytes.Equal(pieces, whole) {
		t.Fatal("pieces differ from whole")
	}
}

// The incremental UTF-8 check agrees with the standard library on whole
// inputs and on every split of them.
func TestUTF8MatchesStdlib(t *testing.T) {
	inputs := []string{
		"", "hello", "κόσμε", "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf", "\xf4\x90\x80\x80",
		"\xed\x9f\xbf", "\xed\xa0\x80", "\xe0\x9f\xbf", "\xe0\xa0\x80", "\xc1\xbf", "\xc2\x80",
		"\xf0\x8f\xbf\xbf", "\xf5\x80\x80\x80", "\xff", "\x80", "a\xce", "abcdefghijklmn\xce\xba",
		"\xef\xbb\xbf", "\xf0\x9f\x98\x80 and more ascii text here",
	}
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 2000; i++ {
		b := make([]byte, r.IntN(12))
		for j := range b {
			b[j] = []byte{0x41, 0x80, 0xbf, 0xc2, 0xe0, 0xed, 0xf0, 0xf4, 0xff, 0xa0, 0x90}[r.IntN(11)]
		}
		inputs = append(inputs, string(b))
	}
	for _, s := range inputs {
		want := utf8.ValidString(s)
		for cut := 0; cut <= len(s); cut++ {
			var c utf8Check
			got := c.write([]byte(s[:cut])) && c.write([]byte(s[cut:])) && c.complete()
			if got != want {
				t.Fatalf("%q cut %d: got %v want %v", s, cut, got, want)
			}
		}
	}
}
