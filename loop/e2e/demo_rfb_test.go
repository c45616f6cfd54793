//go:build linux

package e2e

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// The demo console answers a full framebuffer request through the proxy:
// the whole 640×400 raw update arrives.
func TestDemoFramebuffer(t *testing.T) {
	addr, token, _ := startDemo(t)
	c := open(t, addr, req{token: token, protocol: "binary"})
	_ = c.conn.SetDeadline(time.Now().Add(20 * time.Second))
	var stream []byte
	need := func(n int) []byte { // the next n bytes of the console stream
		for len(stream) < n {
			stream = append(stream, c.readData(1)...)
		}
		out := stream[:n]
		stream = stream[n:]
		return out
	}
	need(12) // RFB 003.008
	c.send(ws.OpBinary, []byte("RFB 003.008\n"))
	need(2) // security types
	c.send(ws.OpBinary, []byte{1})
	need(4) // security result
	c.send(ws.OpBinary, []byte{1})
	init := need(24)
	need(int(binary.BigEndian.Uint32(init[20:24])))
	c.send(ws.OpBinary, []byte{3, 0, 0, 0, 0, 0, 2, 128, 1, 144}) // full update 640x400
	const want = 4 + 12 + 640*400*4
	if got := len(need(want)); got != want {
		t.Fatalf("got %d of %d bytes", got, want)
	}
}
