package wsframe

import (
	"fmt"
	"testing"

	"github.com/gobwas/ws"
)

// BenchmarkParse measures parse + in-place unmask of one masked binary frame.
func BenchmarkParse(b *testing.B) {
	for _, size := range []int{16, 1024, 64 * 1024} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			wire := clientFrame(true, ws.OpBinary, make([]byte, size))
			buf := make([]byte, len(wire))
			var p Parser
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				copy(buf[:MaxHeaderSize], wire) // the header; unmasking the payload again is as good
				p.Reset(Config{})
				for rest := buf; len(rest) > 0; {
					_, n, err := p.Next(rest)
					if err != nil {
						b.Fatal(err)
					}
					rest = rest[n:]
				}
			}
		})
	}
}

// BenchmarkUnmask compares our in-place unmasking with gobwas/ws's Cipher
// measured in the same run.
func BenchmarkUnmask(b *testing.B) {
	key := [4]byte{1, 2, 3, 4}
	for _, size := range []int{16, 1024, 64 * 1024} {
		p := make([]byte, size)
		b.Run(fmt.Sprintf("wsframe/%d", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				Unmask(p, key, 1)
			}
		})
		b.Run(fmt.Sprintf("gobwas/%d", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				ws.Cipher(p, key, 1)
			}
		})
	}
}

// BenchmarkAppendHeader measures encoding a server frame header.
func BenchmarkAppendHeader(b *testing.B) {
	dst := make([]byte, 0, MaxHeaderSize)
	b.ReportAllocs()
	for b.Loop() {
		dst = AppendHeader(dst[:0], ws.OpBinary, 70000)
	}
}
