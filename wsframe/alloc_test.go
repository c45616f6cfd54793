package wsframe

import (
	"testing"

	"github.com/gobwas/ws"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

// Steady-state frame parsing, unmasking and header encoding do not allocate.
func TestNoAllocations(t *testing.T) {
	if testutil.Race {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	payload := make([]byte, 1024)
	wire := cat(clientFrame(false, ws.OpText, []byte("héllo ")), clientFrame(true, ws.OpPing, []byte("p")),
		clientFrame(true, 0, []byte("wörld")), clientFrame(true, ws.OpBinary, payload),
		clientFrame(true, ws.OpClose, closePayload(1000, "bye")))
	buf := make([]byte, len(wire))
	p := NewParser(Config{})
	hdr := make([]byte, 0, MaxHeaderSize)
	key := [4]byte{1, 2, 3, 4}
	tests := map[string]func(){
		"parse": func() {
			copy(buf, wire)
			p.Reset(Config{})
			for b := buf; len(b) > 0; {
				_, n, err := p.Next(b)
				if err != nil {
					panic(err)
				}
				b = b[n:]
			}
		},
		"unmask":        func() { Unmask(payload, key, 1) },
		"encode header": func() { hdr = AppendHeader(hdr[:0], ws.OpBinary, 70000) },
		"encode close":  func() { hdr = AppendClose(hdr[:0], 1000, "") },
	}
	for name, f := range tests {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocations per run", name, n)
		}
	}
}
