//go:build linux

package e2e

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/consoleproxy/consoleproxy/wsframe"
)

// req describes an upgrade request; zero fields take sensible defaults.
type req struct {
	target   string            // default "/?token=" + token
	token    string            // goes into the default target
	headers  map[string]string // extra or replacing headers; "" value deletes
	protocol string            // Sec-WebSocket-Protocol
	raw      string            // if set, sent verbatim instead
}

// wsClient is a raw, blocking WebSocket client for tests.
type wsClient struct {
	t      testing.TB
	conn   net.Conn
	br     *bufio.Reader
	parser *wsframe.Parser
	resp   *http.Response
	buf    []byte
}

// dial connects and sends the upgrade; it returns the client whatever the
// status (check c.resp.StatusCode).
func dial(t testing.TB, addr string, r req) *wsClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	return upgrade(t, conn, addr, r)
}

// upgrade sends the upgrade request on conn (plain or TLS) and reads the
// answer.
func upgrade(t testing.TB, conn net.Conn, addr string, r req) *wsClient {
	t.Helper()
	var err error
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(conn, r.request(addr)); err != nil {
		t.Fatalf("write request: %v", err)
	}
	c := &wsClient{t: t, conn: conn, br: bufio.NewReader(conn), parser: wsframe.NewParser(wsframe.Config{Client: true, MaxFrameSize: 1 << 30, MaxMessageSize: 1 << 30})}
	c.resp, err = http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	return c
}

// open dials and requires 101.
func open(t testing.TB, addr string, r req) *wsClient {
	t.Helper()
	c := dial(t, addr, r)
	if c.resp.StatusCode != 101 {
		t.Fatalf("status %d, want 101", c.resp.StatusCode)
	}
	return c
}

func (r req) request(addr string) string {
	if r.raw != "" {
		return r.raw
	}
	target := r.target
	if target == "" {
		target = "/?token=" + r.token
	}
	h := map[string]string{
		"Host": addr, "Upgrade": "websocket", "Connection": "Upgrade",
		"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13",
	}
	if r.protocol != "" {
		h["Sec-WebSocket-Protocol"] = r.protocol
	}
	for k, v := range r.headers {
		h[k] = v
	}
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\n", target)
	for k, v := range h {
		if v != "" {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n")
	return b.String()
}

// send writes one masked frame.
func (c *wsClient) send(op ws.OpCode, payload []byte) {
	c.t.Helper()
	if _, err := c.conn.Write(maskedFrame(true, op, payload)); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func maskedFrame(fin bool, op ws.OpCode, payload []byte) []byte {
	var key [4]byte
	_, _ = rand.Read(key[:])
	var hdr [wsframe.MaxHeaderSize]byte
	n := wsframe.PutHeader(hdr[:], ws.Header{Fin: fin, OpCode: op, Masked: true, Mask: key, Length: int64(len(payload))})
	out := append(hdr[:n:n], payload...)
	wsframe.Unmask(out[n:], key, 0)
	return out
}

// message is one whole message or control frame from the server.
type message struct {
	op      ws.OpCode
	payload []byte
}

// next returns the next message or control frame; pings are answered.
func (c *wsClient) next() (message, error) {
	var msg message
	for {
		if len(c.buf) == 0 {
			b := make([]byte, 64<<10)
			n, err := c.br.Read(b)
			if err != nil {
				return msg, err
			}
			c.buf = b[:n]
		}
		ev, n, err := c.parser.Next(c.buf)
		c.buf = c.buf[n:]
		if err != nil {
			return msg, err
		}
		switch ev.Kind {
		case wsframe.Data:
			msg.op = ev.OpCode
			msg.payload = append(msg.payload, ev.Payload...)
			if ev.MessageEnd {
				return msg, nil
			}
		case wsframe.Control:
			if ev.OpCode == ws.OpPing {
				_, _ = c.conn.Write(maskedFrame(true, ws.OpPong, ev.Payload))
				continue
			}
			return message{op: ev.OpCode, payload: append([]byte(nil), ev.Payload...)}, nil
		}
	}
}

// readData reads data messages until n payload bytes arrived.
func (c *wsClient) readData(n int) []byte {
	c.t.Helper()
	var out []byte
	for len(out) < n {
		m, err := c.next()
		if err != nil {
			c.t.Fatalf("after %d of %d bytes: %v", len(out), n, err)
		}
		if m.op == ws.OpClose {
			c.t.Fatalf("close %v after %d of %d bytes", closeCode(m), len(out), n)
		}
		p := m.payload
		if m.op == ws.OpText {
			if p, err = base64.StdEncoding.DecodeString(string(m.payload)); err != nil {
				c.t.Fatalf("base64: %v", err)
			}
		}
		out = append(out, p...)
	}
	return out
}

// expectClose reads until a close frame and returns its code; data before it
// is returned too.
func (c *wsClient) expectClose() (ws.StatusCode, []byte) {
	c.t.Helper()
	var data []byte
	for {
		m, err := c.next()
		if err != nil {
			c.t.Fatalf("waiting for close: %v", err)
		}
		if m.op == ws.OpClose {
			return closeCode(m), data
		}
		data = append(data, m.payload...)
	}
}

func closeCode(m message) ws.StatusCode {
	code, _ := wsframe.ParseClose(m.payload)
	return code
}

// expectEOF requires the server to close the TCP connection.
func (c *wsClient) expectEOF() {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, c.br); err != nil {
		c.t.Fatalf("want EOF, got %v", err)
	}
}

// readDataFrom decodes one data message already read.
func (c *wsClient) readDataFrom(m message) []byte {
	c.t.Helper()
	if m.op == ws.OpText {
		p, err := base64.StdEncoding.DecodeString(string(m.payload))
		if err != nil {
			c.t.Fatalf("base64: %v", err)
		}
		return p
	}
	return m.payload
}

func dialRaw(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
