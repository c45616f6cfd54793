package tokens

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

// openEmbedded opens a store in dir with the clock, closed at cleanup.
func openEmbedded(t *testing.T, dir string, clock *fakeClock, prune time.Duration) *Embedded {
	t.Helper()
	log, _ := newLog()
	e, err := OpenEmbedded(EmbeddedConfig{Dir: dir, Logger: log, Now: clock.Now, PruneInterval: prune})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

var demoRequest = MintRequest{ConsoleType: "novnc", Host: "127.0.0.1", Port: 5901, InstanceUUID: "6f5b8a3c-1e2d-4c5b-9a8f-0123456789ab"}

func mint(t *testing.T, e *Embedded, req MintRequest) (string, Record) {
	t.Helper()
	tok, rec, err := e.Mint(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return tok, rec
}

func TestEmbeddedMintLookup(t *testing.T) {
	clock := newClock()
	e := openEmbedded(t, t.TempDir(), clock, -1)
	path := "/websockify"
	req := demoRequest
	req.InternalAccessPath, req.AccessURLBase = &path, "https://c.example/vnc_lite.html"
	tok, rec := mint(t, e, req)
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if len(tok) != 43 || err != nil || len(raw) != 32 {
		t.Fatalf("token %d chars, %d bytes, %v", len(tok), len(raw), err)
	}
	if rec.Expires != clock.Now().Add(DefaultTTL).Unix() || rec.TokenHash != HashToken([]byte(tok)).Hex() {
		t.Errorf("record %+v", rec)
	}
	got, err := e.Lookup(context.Background(), HashToken([]byte(tok)))
	if err != nil || got.Host != "127.0.0.1" || got.Port != 5901 || *got.InternalAccessPath != path || got.AccessURLBase != req.AccessURLBase {
		t.Fatalf("lookup: %+v, %v", got, err)
	}
	if _, err := e.Lookup(context.Background(), HashToken([]byte("other"))); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown: %v", err)
	}
	tok2, _ := mint(t, e, demoRequest)
	if tok2 == tok || e.Len() != 2 {
		t.Errorf("second mint: same token %v, Len %d", tok2 == tok, e.Len())
	}
}

func TestEmbeddedMintInvalid(t *testing.T) {
	e := openEmbedded(t, t.TempDir(), newClock(), -1)
	for name, mod := range map[string]func(*MintRequest){
		"ttl over 24h":   func(r *MintRequest) { r.TTL = MaxTTL + time.Second },
		"negative ttl":   func(r *MintRequest) { r.TTL = -time.Second },
		"no host":        func(r *MintRequest) { r.Host = "" },
		"host with CRLF": func(r *MintRequest) { r.Host = "a\r\nb" },
		"port 0":         func(r *MintRequest) { r.Port = 0 },
		"no type":        func(r *MintRequest) { r.ConsoleType = "" },
		"no instance":    func(r *MintRequest) { r.InstanceUUID = "" },
	} {
		req := demoRequest
		mod(&req)
		if _, _, err := e.Mint(context.Background(), req); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if e.Len() != 0 {
		t.Errorf("Len = %d after refusals", e.Len())
	}
	req := demoRequest
	req.TTL = MaxTTL
	if _, _, err := e.Mint(context.Background(), req); err != nil {
		t.Errorf("24h: %v", err)
	}
}

func TestEmbeddedSurvivesRestart(t *testing.T) {
	dir, clock := filepath.Join(t.TempDir(), "var"), newClock()
	e := openEmbedded(t, dir, clock, -1)
	tok, _ := mint(t, e, demoRequest)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = openEmbedded(t, dir, clock, -1)
	if rec, err := e.Lookup(context.Background(), HashToken([]byte(tok))); err != nil || rec.Port != 5901 {
		t.Fatalf("after reopen: %+v, %v", rec, err)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, "tokens.db"): 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %v", path, fi.Mode().Perm(), err, want)
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, "tokens.db"))
	if err != nil || strings.Contains(string(data), tok) {
		t.Errorf("the database holds the token itself (%v)", err)
	}
}

func TestEmbeddedLockedByAnother(t *testing.T) {
	dir := t.TempDir()
	openEmbedded(t, dir, newClock(), -1)
	if e, err := OpenEmbedded(EmbeddedConfig{Dir: dir}); err == nil || !strings.Contains(err.Error(), "in use") {
		if e != nil {
			e.Close()
		}
		t.Fatalf("second open: %v", err)
	}
}

func TestEmbeddedExpiry(t *testing.T) {
	dir, clock := t.TempDir(), newClock()
	e := openEmbedded(t, dir, clock, -1)
	short, long := demoRequest, demoRequest
	short.TTL, long.TTL = time.Minute, time.Hour
	tokShort, _ := mint(t, e, short)
	tokLong, _ := mint(t, e, long)
	clock.Advance(time.Minute)
	if _, err := e.Lookup(context.Background(), HashToken([]byte(tokShort))); !errors.Is(err, ErrExpired) {
		t.Errorf("at expiry: %v", err)
	}
	if n, err := e.prune(); n != 1 || err != nil || e.Len() != 1 {
		t.Errorf("prune: %d, %v, Len %d", n, err, e.Len())
	}
	if _, err := e.Lookup(context.Background(), HashToken([]byte(tokShort))); !errors.Is(err, ErrNotFound) {
		t.Errorf("after prune: %v", err)
	}
	if _, err := e.Lookup(context.Background(), HashToken([]byte(tokLong))); err != nil {
		t.Errorf("unexpired token after prune: %v", err)
	}
	// Pruned on open, too.
	e.Close()
	clock.Advance(time.Hour)
	e = openEmbedded(t, dir, clock, -1)
	if e.Len() != 0 {
		t.Errorf("Len after reopen past expiry = %d", e.Len())
	}
}

func TestEmbeddedPruneLoop(t *testing.T) {
	clock := newClock()
	e := openEmbedded(t, t.TempDir(), clock, time.Millisecond)
	mint(t, e, demoRequest)
	clock.Advance(DefaultTTL)
	testutil.CheckFor(t, "the pruner", func() error {
		if e.Len() != 0 {
			return errors.New("record still there")
		}
		return nil
	})
}

func TestEmbeddedRevoke(t *testing.T) {
	e := openEmbedded(t, t.TempDir(), newClock(), -1)
	tok, _ := mint(t, e, demoRequest)
	h := HashToken([]byte(tok))
	if err := e.Revoke(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Lookup(context.Background(), h); !errors.Is(err, ErrNotFound) {
		t.Errorf("after revoke: %v", err)
	}
	if err := e.Revoke(context.Background(), h); !errors.Is(err, ErrNotFound) {
		t.Errorf("second revoke: %v", err)
	}
}

func TestEmbeddedClose(t *testing.T) {
	e := openEmbedded(t, t.TempDir(), newClock(), time.Millisecond)
	tok, _ := mint(t, e, demoRequest)
	for range 2 {
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-e.done:
	default:
		t.Fatal("pruner still running after Close")
	}
	if _, err := e.Lookup(context.Background(), HashToken([]byte(tok))); !errors.Is(err, ErrUnavailable) {
		t.Errorf("lookup after Close: %v", err)
	}
	if _, _, err := e.Mint(context.Background(), demoRequest); !errors.Is(err, ErrUnavailable) {
		t.Errorf("mint after Close: %v", err)
	}
	if e.Len() != -1 || e.Reload() != nil {
		t.Errorf("Len %d after Close", e.Len())
	}
}

func TestEmbeddedCancelled(t *testing.T) {
	e := openEmbedded(t, t.TempDir(), newClock(), -1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.Lookup(ctx, Hash{}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Lookup: %v", err)
	}
	if _, _, err := e.Mint(ctx, demoRequest); !errors.Is(err, context.Canceled) {
		t.Errorf("Mint: %v", err)
	}
	if err := e.Revoke(ctx, Hash{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Revoke: %v", err)
	}
}

func TestValueRoundTrip(t *testing.T) {
	rec, _, err := ParseRecord([]byte(contractLine))
	if err != nil {
		t.Fatal(err)
	}
	v, err := encodeValue(rec)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeValue(v)
	if err != nil || got != rec {
		t.Errorf("round trip: %+v, %v", got, err)
	}
	for _, bad := range [][]byte{nil, v[:7], v[:20]} {
		if _, err := decodeValue(bad); err == nil {
			t.Errorf("decodeValue(%d bytes) accepted", len(bad))
		}
	}
}
