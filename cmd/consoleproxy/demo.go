//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/consoleproxy/consoleproxy/relay/tokens"
)

// The demo console is a tiny RFB 3.8 server (RFC 6143) on loopback that
// draws colour bars, so `make run` shows a working console in noVNC without
// a virtual machine. It is a stand-in for a compute host: one goroutine per
// connection is fine here, it is not on the proxy's path.
const demoWidth, demoHeight = 640, 400

func (a *app) startDemo(ctx context.Context, o *options) error {
	e, ok := a.store.(*tokens.Embedded)
	if !ok {
		return errors.New("--demo needs the embedded token store (leave --token-store empty)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("demo console: %w", err)
	}
	go func() { <-ctx.Done(); ln.Close() }()
	go serveDemo(ln)
	port := ln.Addr().(*net.TCPAddr).Port
	token, _, err := e.Mint(ctx, tokens.MintRequest{ConsoleType: o.consoleType, Host: "127.0.0.1", Port: port,
		InstanceUUID: "00000000-0000-4000-8000-000000000001", TTL: time.Hour})
	if err != nil {
		return fmt.Errorf("demo token: %w", err)
	}
	addr := a.srv.Addr()
	if addr.Addr().IsUnspecified() {
		addr = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), addr.Port())
	}
	fmt.Fprintf(os.Stdout, "\ndemo console (colour bars over RFB) behind the proxy; token valid for 1h\n"+
		"  WebSocket URL: ws://%s/?token=%s\n"+
		"  noVNC:         vnc_lite.html?host=%s&port=%d&path=%%3Ftoken%%3D%s\n"+
		"  metrics:       http://%s/metrics\n",
		addr, token, addr.Addr(), addr.Port(), token, o.metricsListen)
	if o.web != "" {
		fmt.Fprintf(os.Stdout, "  in a browser:  http://%s/vnc_lite.html?path=%%3Ftoken%%3D%s\n", addr, token)
	}
	fmt.Fprintf(os.Stdout, "\nCtrl-C stops the proxy.\n")
	return nil
}

func serveDemo(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_ = demoSession(c)
		}()
	}
}

// pixelFormat is the part of RFB's PIXEL_FORMAT the demo honours.
type pixelFormat struct {
	bpp                    uint8
	bigEndian              bool
	rShift, gShift, bShift uint8
}

func demoSession(c net.Conn) error {
	_ = c.SetDeadline(time.Now().Add(time.Hour))
	r := bufio.NewReader(c)
	if _, err := io.WriteString(c, "RFB 003.008\n"); err != nil {
		return err
	}
	var ver [12]byte
	if _, err := io.ReadFull(r, ver[:]); err != nil {
		return err
	}
	if _, err := c.Write([]byte{1, 1}); err != nil { // one security type: None
		return err
	}
	var b [1]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return err
	}
	if _, err := c.Write([]byte{0, 0, 0, 0}); err != nil { // SecurityResult OK
		return err
	}
	if _, err := io.ReadFull(r, b[:]); err != nil { // ClientInit
		return err
	}
	pf := pixelFormat{bpp: 32, rShift: 16, gShift: 8, bShift: 0}
	if _, err := c.Write(serverInit()); err != nil {
		return err
	}
	return demoMessages(c, r, &pf)
}

func serverInit() []byte {
	name := "consoleproxy demo"
	m := binary.BigEndian.AppendUint16(nil, demoWidth)
	m = binary.BigEndian.AppendUint16(m, demoHeight)
	m = append(m, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0)
	m = binary.BigEndian.AppendUint32(m, uint32(len(name)))
	return append(m, name...)
}

// demoMessages answers client messages until the connection ends.
func demoMessages(c net.Conn, r *bufio.Reader, pf *pixelFormat) error {
	var hdr [20]byte
	for {
		t, err := r.ReadByte()
		if err != nil {
			return err
		}
		switch t {
		case 0: // SetPixelFormat
			if _, err := io.ReadFull(r, hdr[:19]); err != nil {
				return err
			}
			p := hdr[3:]
			*pf = pixelFormat{bpp: p[0], bigEndian: p[2] != 0, rShift: p[10], gShift: p[11], bShift: p[12]}
		case 2: // SetEncodings
			if _, err := io.ReadFull(r, hdr[:3]); err != nil {
				return err
			}
			if _, err := r.Discard(4 * int(binary.BigEndian.Uint16(hdr[1:]))); err != nil {
				return err
			}
		case 3: // FramebufferUpdateRequest
			if _, err := io.ReadFull(r, hdr[:9]); err != nil {
				return err
			}
			if hdr[0] == 0 { // not incremental: nothing ever changes otherwise
				if _, err := c.Write(frame(pf)); err != nil {
					return err
				}
			}
		case 4: // KeyEvent
			_, err = r.Discard(7)
		case 5: // PointerEvent
			_, err = r.Discard(5)
		case 6: // ClientCutText
			if _, err := io.ReadFull(r, hdr[:7]); err != nil {
				return err
			}
			_, err = r.Discard(int(binary.BigEndian.Uint32(hdr[3:])))
		default:
			return fmt.Errorf("demo: unknown client message %d", t)
		}
		if err != nil {
			return err
		}
	}
}

// bars are the colours of the test pattern.
var bars = [][3]byte{{192, 192, 192}, {192, 192, 0}, {0, 192, 192}, {0, 192, 0}, {192, 0, 192}, {192, 0, 0}, {0, 0, 192}}

// frame is one raw FramebufferUpdate of the whole screen in pf (32 bpp).
func frame(pf *pixelFormat) []byte {
	m := []byte{0, 0, 0, 1, 0, 0, 0, 0}
	m = binary.BigEndian.AppendUint16(m, demoWidth)
	m = binary.BigEndian.AppendUint16(m, demoHeight)
	m = append(m, 0, 0, 0, 0) // raw
	for y := 0; y < demoHeight; y++ {
		for x := 0; x < demoWidth; x++ {
			col := bars[x*len(bars)/demoWidth]
			v := uint32(col[0])<<pf.rShift | uint32(col[1])<<pf.gShift | uint32(col[2])<<pf.bShift
			// Padding bits set: RFB ignores them, and noVNC 1.3's raw decoder
			// takes the padding byte of all but its first lines as alpha.
			v |= ^(uint32(0xff)<<pf.rShift | uint32(0xff)<<pf.gShift | uint32(0xff)<<pf.bShift)
			if pf.bigEndian {
				m = binary.BigEndian.AppendUint32(m, v)
			} else {
				m = binary.LittleEndian.AppendUint32(m, v)
			}
		}
	}
	return m
}
