package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/consoleproxy/consoleproxy/relay/tokens"
)

// The embedded token store is a bbolt database, which one process at a
// time may open (a file lock). In a binary upgrade the old process holds it
// while the new one starts, and must keep it until the new one serves:
// until then the old one serves every new client. So the new process opens
// it beside the serving (lateEmbedded): it reports ready with the store
// still opening, the old process stops accepting, lets the handshakes it
// accepted look their tokens up (at most handoverStoreWait), and closes the
// store (releaseStore); the new one's next try opens it. Lookups in the
// new process meanwhile wait for it, within their handshake's time.

// handoverStoreWait bounds how long the old process keeps the embedded
// store after it stopped accepting, for the handshakes it accepted before;
// a handshake still looking its token up after it gets 503.
const handoverStoreWait = 5 * time.Second

// lateRetry is how often the new process tries to open the store: each try
// waits up to a second for the lock (tokens.OpenEmbedded).
const lateRetry = 50 * time.Millisecond

// lateEmbedded is the embedded store of a process started by a binary
// upgrade, opened once the process before lets it go.
type lateEmbedded struct {
	opened chan struct{} // closed once e or err is set
	e      *tokens.Embedded
	err    error
	stop   chan struct{} // Close: stop trying
	once   sync.Once
}

// openLate tries to open the store until it opens, the process before has
// exited and a last try failed, or Close.
func openLate(cfg tokens.EmbeddedConfig, parentGone func() bool, log *slog.Logger) *lateEmbedded {
	l := &lateEmbedded{opened: make(chan struct{}), stop: make(chan struct{})}
	go func() {
		defer close(l.opened)
		for {
			gone := parentGone()
			e, err := tokens.OpenEmbedded(cfg)
			if err == nil {
				l.e = e
				log.Info("binary upgrade: embedded token store opened", "dir", cfg.Dir)
				return
			}
			if gone {
				l.err = err
				log.Error("binary upgrade: the embedded token store cannot be opened; every lookup fails", "err", err.Error())
				return
			}
			select {
			case <-l.stop:
				l.err = errors.New("closed")
				return
			case <-time.After(lateRetry):
			}
		}
	}()
	return l
}

// Lookup waits for the store (within ctx) and looks h up there.
func (l *lateEmbedded) Lookup(ctx context.Context, h tokens.Hash) (tokens.Record, error) {
	e, err := l.open(ctx)
	if err != nil {
		return tokens.Record{}, err
	}
	return e.Lookup(ctx, h)
}

// open waits for the store within ctx.
func (l *lateEmbedded) open(ctx context.Context) (*tokens.Embedded, error) {
	select {
	case <-l.opened:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: the embedded store is still held by the process before", tokens.ErrUnavailable)
	}
	if l.e == nil {
		return nil, fmt.Errorf("%w: the embedded store did not open: %w", tokens.ErrUnavailable, l.err)
	}
	return l.e, nil
}

// Mint waits for the store (within ctx) and mints there: the admin API
// serves from the start, minting once the store is open.
func (l *lateEmbedded) Mint(ctx context.Context, req tokens.MintRequest) (string, tokens.Record, error) {
	e, err := l.open(ctx)
	if err != nil {
		return "", tokens.Record{}, err
	}
	return e.Mint(ctx, req)
}

// Revoke waits for the store (within ctx) and revokes there.
func (l *lateEmbedded) Revoke(ctx context.Context, h tokens.Hash) error {
	e, err := l.open(ctx)
	if err != nil {
		return err
	}
	return e.Revoke(ctx, h)
}

// Reload reloads the store once open.
func (l *lateEmbedded) Reload() error {
	select {
	case <-l.opened:
		if l.e != nil {
			return l.e.Reload()
		}
	default:
	}
	return nil
}

// Close stops trying, waits for a try under way, and closes the store.
func (l *lateEmbedded) Close() error {
	l.once.Do(func() { close(l.stop) })
	<-l.opened
	if l.e != nil {
		return l.e.Close()
	}
	return nil
}

// releaseStore is the old process's side: once no session here is before
// relaying (or handoverStoreWait passed), an embedded store is closed so
// that the new process can open it.
func (a *app) releaseStore() {
	if _, ok := a.store.(*tokens.Embedded); !ok {
		return
	}
	deadline := time.Now().Add(handoverStoreWait)
	for a.srv.Unrelayed() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := a.store.Close(); err != nil {
		a.log.Warn("hand-over: closing the embedded token store", "err", err.Error())
	}
	a.log.Info("hand-over: embedded token store released to the new process")
}

var _ tokens.Writable = (*lateEmbedded)(nil)
