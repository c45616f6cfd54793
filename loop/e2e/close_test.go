//go:build linux

package e2e

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/loop"
	"github.com/consoleproxy/consoleproxy/wsframe"
)

// The host closing its socket ends the session with 1000, after every byte
// it sent has reached the client.
func TestHostCloseAfterData(t *testing.T) {
	p := startProxy(t, nil)
	const total = 3 << 20
	b := startBackend(t, firehose(total))
	c := open(t, p.addr, req{token: p.mint(b.port(), nil)})
	code, data := c.expectClose()
	if code != 1000 {
		t.Fatalf("close code %d, want 1000", code)
	}
	want := make([]byte, total)
	fillPattern(want, 0)
	if !bytes.Equal(data, want) {
		t.Fatalf("received %d bytes, want %d identical", len(data), total)
	}
	c.expectEOF()
}

// A host socket that fails (RST) ends the session with 1011.
func TestHostReset(t *testing.T) {
	p := startProxy(t, nil)
	b := startBackend(t, resetter)
	c := open(t, p.addr, req{token: p.mint(b.port(), nil)})
	c.send(ws.OpBinary, []byte("x"))
	code, _ := c.expectClose()
	if code != 1011 {
		t.Fatalf("close code %d, want 1011", code)
	}
}

// Protocol violations end the session with the contract's close codes.
func TestProtocolCloseCodes(t *testing.T) {
	p := startProxy(t, func(cfg *loop.Config) { cfg.MaxMessageSize, cfg.MaxFrameSize = 1000, 1000 })
	b := startBackend(t, echo)
	unmasked := wsframe.AppendHeader(nil, ws.OpBinary, 1)
	unmasked = append(unmasked, 'x')
	reserved := maskedFrame(true, ws.OpBinary, []byte("x"))
	reserved[0] |= 0x40
	tests := []struct {
		name     string
		protocol string
		frames   [][]byte
		code     ws.StatusCode
	}{
		{"unmasked frame", "binary", [][]byte{unmasked}, 1002},
		{"reserved bits", "binary", [][]byte{reserved}, 1002},
		{"reserved opcode", "binary", [][]byte{maskedFrame(true, 5, nil)}, 1002},
		{"long ping", "binary", [][]byte{maskedFrame(true, ws.OpPing, make([]byte, 126))}, 1002},
		{"fragmented ping", "binary", [][]byte{maskedFrame(false, ws.OpPing, nil)}, 1002},
		{"bare continuation", "binary", [][]byte{maskedFrame(true, ws.OpContinuation, []byte("x"))}, 1002},
		{"text on binary session", "binary", [][]byte{maskedFrame(true, ws.OpText, []byte("x"))}, 1003},
		{"binary on base64 session", "base64", [][]byte{maskedFrame(true, ws.OpBinary, []byte("x"))}, 1003},
		{"invalid utf-8 text", "base64", [][]byte{maskedFrame(true, ws.OpText, []byte("\xff"))}, 1007},
		{"invalid utf-8 close reason", "binary", [][]byte{maskedFrame(true, ws.OpClose, []byte{3, 232, 0xff})}, 1007},
		{"frame over the limit", "binary", [][]byte{maskedFrame(true, ws.OpBinary, make([]byte, 1001))}, 1009},
		{"message over the limit", "binary", [][]byte{maskedFrame(false, ws.OpBinary, make([]byte, 600)), maskedFrame(true, 0, make([]byte, 600))}, 1009},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := open(t, p.addr, req{token: p.mint(b.port(), nil), protocol: tc.protocol})
			for _, f := range tc.frames {
				_, _ = c.conn.Write(f)
			}
			if code, _ := c.expectClose(); code != tc.code {
				t.Fatalf("close code %d, want %d", code, tc.code)
			}
			c.expectEOF()
		})
	}
}

// Subprotocols: binary when offered, else base64 when offered, else none
// (binary frames, no header).
func TestSubprotocols(t *testing.T) {
	p := startProxy(t, nil)
	b := startBackend(t, echo)
	tests := []struct{ offer, chosen string }{
		{"binary", "binary"}, {"base64, binary", "binary"}, {"base64", "base64"}, {"", ""}, {"chat", ""},
	}
	for _, tc := range tests {
		c := open(t, p.addr, req{token: p.mint(b.port(), nil), protocol: tc.offer})
		if got := c.resp.Header.Get("Sec-WebSocket-Protocol"); got != tc.chosen {
			t.Fatalf("offer %q: chose %q, want %q", tc.offer, got, tc.chosen)
		}
		msg := []byte("hello \x00\xff console")
		if tc.chosen == "base64" {
			c.send(ws.OpText, []byte(base64.StdEncoding.EncodeToString(msg)))
		} else {
			c.send(ws.OpBinary, msg)
		}
		m, err := c.next()
		if err != nil {
			t.Fatal(err)
		}
		wantOp := ws.OpBinary
		if tc.chosen == "base64" {
			wantOp = ws.OpText
		}
		if m.op != wantOp {
			t.Fatalf("offer %q: opcode %d, want %d", tc.offer, m.op, wantOp)
		}
		if got := c.readDataFrom(m); !bytes.Equal(got, msg) {
			t.Fatalf("offer %q: echo %q", tc.offer, got)
		}
	}
}

// Pings from the client are answered with the same payload.
func TestPingPong(t *testing.T) {
	p := startProxy(t, nil)
	b := startBackend(t, echo)
	c := open(t, p.addr, req{token: p.mint(b.port(), nil)})
	c.send(ws.OpPing, []byte("are you there"))
	m, err := c.next()
	if err != nil || m.op != ws.OpPong || string(m.payload) != "are you there" {
		t.Fatalf("pong: %+v %v", m, err)
	}
}

// --idle-timeout ends a session without data either way with 1001.
func TestIdleTimeout(t *testing.T) {
	p := startProxy(t, func(cfg *loop.Config) { cfg.IdleTimeout = 300 * time.Millisecond })
	b := startBackend(t, echo)
	c := open(t, p.addr, req{token: p.mint(b.port(), nil)})
	if code, _ := c.expectClose(); code != 1001 {
		t.Fatalf("close code %d, want 1001", code)
	}
	testutil.WaitFor(t, "idle_timeout logged", func() bool { return strings.Contains(p.logs.String(), `"end":"idle_timeout"`) })
}

// --enforce-session-timeout ends a session when its token expires.
func TestSessionExpiry(t *testing.T) {
	p := startProxy(t, func(cfg *loop.Config) { cfg.EnforceSessionTimeout = true })
	b := startBackend(t, echo)
	tok := p.mint(b.port(), func(r *record) { r.Expires = time.Now().Add(1500*time.Millisecond).Unix() + 1 })
	c := open(t, p.addr, req{token: tok})
	if code, _ := c.expectClose(); code != 1001 {
		t.Fatalf("close code %d, want 1001", code)
	}
	testutil.WaitFor(t, "session_expired logged", func() bool { return strings.Contains(p.logs.String(), `"end":"session_expired"`) })
}

// A client that stops answering pings is closed.
func TestPingTimeout(t *testing.T) {
	p := startProxy(t, func(cfg *loop.Config) { cfg.PingInterval = 200 * time.Millisecond })
	b := startBackend(t, echo)
	c := open(t, p.addr, req{token: p.mint(b.port(), nil)})
	// Read raw bytes without answering pings.
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got []byte
	buf := make([]byte, 1024)
	for {
		n, err := c.conn.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
	}
	if !bytes.Contains(got, wsframe.PingFrame) {
		t.Fatal("no ping was sent")
	}
	testutil.WaitFor(t, "ping_timeout logged", func() bool { return strings.Contains(p.logs.String(), `"end":"ping_timeout"`) })
}

// --handshake-timeout closes a client that never finishes its upgrade.
func TestHandshakeTimeout(t *testing.T) {
	p := startProxy(t, func(cfg *loop.Config) { cfg.HandshakeTimeout = 300 * time.Millisecond })
	c := dialRaw(t, p.addr)
	_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n"))
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("read %d, %v: want the connection closed", n, err)
	}
	testutil.WaitFor(t, "counted", func() bool {
		return strings.Contains(metricsText(p), `consoleproxy_sessions_total{result="handshake_timeout"} 1`)
	})
}
