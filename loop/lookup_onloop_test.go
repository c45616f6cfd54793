//go:build linux

package loop

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/relay/reuse"
)

// With a store and a reuse guard that never block, a handshake's lookup
// runs on its loop: a session to a host given as an address opens while
// every worker is busy and the worker queue is full (it got 503 before),
// while one to a host given as a DNS name still takes a worker for the
// resolve (503 while none is free, 101 once one is).
func TestLookupOnLoop(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	st := fileStore(t, testutil.TokenLine("by-address", "127.0.0.1", port),
		testutil.TokenLine("by-name", "localhost", port), testutil.TokenLine("by-name-later", "localhost", port))
	s, err := New(Config{Listen: "127.0.0.1:0", Store: st, Logger: discardLog, EventLoops: 1, Workers: 1, Queue: 1,
		Reuse: reuse.NewLocalGuard(reuse.Exclusive, time.Now)})
	if err != nil {
		t.Fatal(err)
	}
	if !s.lookupOnLoop {
		t.Fatal("the file store and the local guard never block, but lookups go to workers")
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Shutdown(t.Context()) }()
	busy, running := make(chan struct{}), make(chan struct{})
	// The one worker (once it has taken its job), then the one queue slot.
	if !s.pool.submit(func() { close(running); <-busy }) {
		t.Fatal("could not occupy the worker")
	}
	<-running
	if !s.pool.submit(func() { <-busy }) {
		t.Fatal("could not fill the worker queue")
	}
	open := func(token string) int {
		t.Helper()
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET /?token=%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", token, s.Addr())
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := open("by-address"); code != 101 {
		t.Fatalf("host by address with every worker busy: %d, want 101", code)
	}
	if code := open("by-name"); code != 503 {
		t.Fatalf("host by name with every worker busy: %d, want 503 (its resolve needs a worker)", code)
	}
	close(busy)
	if code := open("by-name-later"); code != 101 {
		t.Fatalf("host by name with a worker free: %d, want 101", code)
	}
}
