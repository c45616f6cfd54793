package wsframe

import (
	"testing"

	"github.com/gobwas/ws"
)

// FuzzParser feeds each input whole, one byte at a time and split at two
// fuzzer-chosen points, as a server and as a client, and requires the same
// transcript (messages, control frames, error code) every way.
func FuzzParser(f *testing.F) {
	seeds := [][]byte{
		{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58},
		{0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f},
		cat(clientFrame(false, ws.OpText, []byte("h\xc3")), clientFrame(true, ws.OpPing, nil), clientFrame(true, 0, []byte("\xa9"))),
		clientFrame(true, ws.OpClose, closePayload(1000, "ok")),
		clientFrame(true, ws.OpBinary, make([]byte, 300)),
		{0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4},
	}
	for _, s := range seeds {
		f.Add(s, uint16(1), uint16(5), byte(0))
	}
	f.Fuzz(func(t *testing.T, input []byte, a, b uint16, flags byte) {
		cfg := Config{
			Client: flags&1 != 0, RefuseText: flags&2 != 0, RefuseBinary: flags&4 != 0,
			MaxFrameSize: 64, MaxMessageSize: 100,
		}
		whole := parseSplit(cfg, input).String()
		if got := parseSplit(cfg, input, everyByte(input)...).String(); got != whole {
			t.Fatalf("byte at a time:\n%s\nwhole:\n%s", got, whole)
		}
		x, y := int(a)%(len(input)+1), int(b)%(len(input)+1)
		if got := parseSplit(cfg, input, min(x, y), max(x, y)).String(); got != whole {
			t.Fatalf("split at %d,%d:\n%s\nwhole:\n%s", x, y, got, whole)
		}
	})
}
