//go:build linux

package relay

import (
	"io"
	"net"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/consoleproxy/consoleproxy/wsframe"
)

// A full host read, framed, fits one TCP segment of a stream on loopback
// (IPv4 and IPv6, timestamps on, as Linux has them by default): a frame
// one byte too long for it goes out as a full segment and a sliver.
func TestFullReadFitsLoopbackSegment(t *testing.T) {
	frame := wsframe.HeaderSize(DefaultReadSize) + DefaultReadSize
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Logf("%s: %v (no such loopback here)", addr, err)
			continue
		}
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			ln.Close()
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		// The segment a sender uses is bounded by half the largest window
		// its peer offered, so the bound shows once a stream has run.
		const stream = 8 << 20
		wrote := make(chan error, 1)
		go func() {
			_, err := s.Write(make([]byte, stream))
			wrote <- err
		}()
		if _, err := io.CopyN(io.Discard, c, stream); err != nil {
			t.Fatal(err)
		}
		if err := <-wrote; err != nil {
			t.Fatal(err)
		}
		raw, err := s.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var mss int
		var serr error
		if err := raw.Control(func(fd uintptr) { mss, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_MAXSEG) }); err != nil || serr != nil {
			t.Fatal(err, serr)
		}
		if frame > mss {
			t.Errorf("%s: a full read makes a %d-byte frame, over the %d-byte segment", addr, frame, mss)
		}
		s.Close()
		c.Close()
		ln.Close()
	}
}
