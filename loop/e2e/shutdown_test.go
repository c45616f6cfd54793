//go:build linux

package e2e

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consoleproxy/consoleproxy/loop"
	"github.com/consoleproxy/consoleproxy/relay/tokens"
)

// Server.Shutdown returns although a worker is stuck in a token lookup
// that ignores its context (a store driver that hangs).
func TestShutdownAbandonsBlockedLookup(t *testing.T) {
	hang := &hangingStore{entered: make(chan struct{}), release: make(chan struct{})}
	p := startProxy(t, func(c *loop.Config) { hang.Store = c.Store; c.Store = hang; c.Workers = 1 })
	t.Cleanup(func() { close(hang.release) }) // before the proxy's own cleanup (LIFO)
	c := dialRaw(t, p.addr)
	if _, err := c.Write([]byte(req{token: "tok-hang"}.request(p.addr))); err != nil {
		t.Fatal(err)
	}
	<-hang.entered
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.srv.Shutdown(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Shutdown blocked on a worker stuck in a lookup")
	}
	if !strings.Contains(p.logs.String(), "abandoned") {
		t.Fatalf("no log line about the abandoned worker:\n%s", p.logs)
	}
}

// hangingStore's Lookup blocks until release, ignoring its context.
type hangingStore struct {
	tokens.Store
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (h *hangingStore) Lookup(context.Context, tokens.Hash) (tokens.Record, error) {
	h.once.Do(func() { close(h.entered) })
	<-h.release
	return tokens.Record{}, tokens.ErrNotFound
}
