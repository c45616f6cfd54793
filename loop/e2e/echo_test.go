//go:build linux

package e2e

import (
	"bytes"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

// A session relays both ways: binary frames to an echo host and back.
func TestEchoBinary(t *testing.T) {
	p := startProxy(t, nil)
	b := startBackend(t, echo)
	c := open(t, p.addr, req{token: p.mint(b.port(), nil), protocol: "binary"})
	if got := c.resp.Header.Get("Sec-WebSocket-Protocol"); got != "binary" {
		t.Fatalf("protocol %q", got)
	}
	for _, size := range []int{1, 125, 126, 65535, 65536, 200000} {
		msg := bytes.Repeat([]byte{byte(size)}, size)
		c.send(ws.OpBinary, msg)
		if got := c.readData(size); !bytes.Equal(got, msg) {
			t.Fatalf("size %d: echo differs", size)
		}
	}
	c.send(ws.OpClose, []byte{0x03, 0xe8})
	if code, _ := c.expectClose(); code != 1000 {
		t.Fatalf("close code %d", code)
	}
	testutil.WaitFor(t, "session end log", func() bool { return strings.Contains(p.logs.String(), `"end":"client_closed"`) })
}
