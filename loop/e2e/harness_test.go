//go:build linux

package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/loop"
	"github.com/consoleproxy/consoleproxy/relay/tokens"
)

// proxy is an in-process consoleproxy with a token file.
type proxy struct {
	t     testing.TB
	srv   *loop.Server
	store *tokens.FileStore
	path  string
	mu    sync.Mutex
	logs  *syncBuffer
	addr  string
}

// syncBuffer collects a proxy's log (the one copy is testutil's).
type syncBuffer = testutil.LogBuffer

// startProxy starts a proxy on a free loopback port; edit tweaks the config.
func startProxy(t testing.TB, edit func(*loop.Config)) *proxy {
	t.Helper()
	p := &proxy{t: t, path: filepath.Join(t.TempDir(), "tokens.jsonl"), logs: &syncBuffer{}}
	if err := os.WriteFile(p.path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewJSONHandler(io.MultiWriter(p.logs), nil))
	st, err := tokens.OpenFile(tokens.FileConfig{Path: p.path, Logger: logger, PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	p.store = st
	cfg := loop.Config{Listen: "127.0.0.1:0", Store: st, Logger: logger, EventLoops: harnessLoops}
	if edit != nil {
		edit(&cfg)
	}
	p.srv, err = loop.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.srv.Start(); err != nil {
		t.Fatal(err)
	}
	p.addr = p.srv.Addr().String()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.srv.Shutdown(ctx)
		st.Close()
	})
	return p
}

// record is a token-file line; mint fills the hash.
type record struct {
	ConsoleType        string  `json:"console_type"`
	Host               string  `json:"host"`
	Port               int     `json:"port"`
	InternalAccessPath *string `json:"internal_access_path"`
	InstanceUUID       string  `json:"instance_uuid"`
	AccessURLBase      string  `json:"access_url_base,omitempty"`
	Expires            int64   `json:"expires"`
	TokenHash          string  `json:"token_hash"`
}

// mint adds a token for host:port to the file and reloads it.
func (p *proxy) mint(port int, edit func(*record)) string {
	p.t.Helper()
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	token := hex.EncodeToString(raw[:])
	h := tokens.HashToken([]byte(token))
	r := record{ConsoleType: "novnc", Host: "127.0.0.1", Port: port, InstanceUUID: "6f1d7c2e-0000-4000-8000-" + token[:12],
		Expires: time.Now().Add(time.Hour).Unix(), TokenHash: h.Hex()}
	if edit != nil {
		edit(&r)
	}
	line, _ := json.Marshal(r)
	p.mu.Lock()
	defer p.mu.Unlock()
	f, err := os.OpenFile(p.path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		p.t.Fatal(err)
	}
	_, _ = f.Write(append(line, '\n'))
	f.Close()
	if err := p.store.Reload(); err != nil {
		p.t.Fatal(err)
	}
	return token
}
