package tokens

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

// fileFixture is a token file and a store watching it.
type fileFixture struct {
	path  string
	clock *fakeClock
	logs  *logBuffer
	s     *FileStore
}

// openFixture writes content and opens a store that polls every poll.
func openFixture(t *testing.T, content string, poll time.Duration) *fileFixture {
	t.Helper()
	fx := &fileFixture{path: filepath.Join(t.TempDir(), "tokens.jsonl"), clock: newClock()}
	write(t, fx.path, content)
	log, lb := newLog()
	fx.logs = lb
	s, err := OpenFile(FileConfig{Path: fx.path, PollInterval: poll, Logger: log, Now: fx.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	fx.s = s
	t.Cleanup(func() { s.Close() })
	return fx
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// lookup returns Lookup's error for token ("" for none).
func (fx *fileFixture) lookup(token string) error {
	_, err := fx.s.Lookup(context.Background(), HashToken([]byte(token)))
	return err
}

// found is a testutil.CheckFor condition: token resolves to a record.
func (fx *fileFixture) found(token string) func() error {
	return func() error { return fx.lookup(token) }
}

// gone is a testutil.CheckFor condition: token is unknown.
func (fx *fileFixture) gone(token string) func() error {
	return func() error {
		if err := fx.lookup(token); !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("lookup: %v", err)
		}
		return nil
	}
}

const farFuture = 4_000_000_000

func TestFileLookup(t *testing.T) {
	fx := openFixture(t, line("ok", "10.0.0.1", farFuture)+"\n"+line("old", "10.0.0.2", 1_700_000_100)+"\n", -1)
	rec, err := fx.s.Lookup(context.Background(), HashToken([]byte("ok")))
	if err != nil || rec.Host != "10.0.0.1" || rec.Port != 5900 {
		t.Fatalf("ok: %+v, %v", rec, err)
	}
	if err := fx.lookup("unknown"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown: %v", err)
	}
	if err := fx.lookup("old"); err != nil {
		t.Errorf("old before expiry: %v", err)
	}
	fx.clock.Advance(100 * time.Second) // now == expires: refused
	if err := fx.lookup("old"); !errors.Is(err, ErrExpired) {
		t.Errorf("old at expiry: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := fx.s.Lookup(ctx, HashToken([]byte("ok"))); !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: %v", err)
	}
	if fx.s.Len() != 2 {
		t.Errorf("Len = %d", fx.s.Len())
	}
}

func TestFileLookupAllocs(t *testing.T) {
	if testutil.Race {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	fx := openFixture(t, line("ok", "10.0.0.1", farFuture)+"\n", -1)
	h, ctx := HashToken([]byte("ok")), context.Background()
	if n := testing.AllocsPerRun(100, func() { _, _ = fx.s.Lookup(ctx, h) }); n != 0 {
		t.Errorf("Lookup allocates %v times, want 0", n)
	}
}

// TestFileBadLinesLogged: a bad line is skipped with a warning naming its
// number, never its content (docs/contract.md "The token file").
func TestFileBadLinesLogged(t *testing.T) {
	bad := strings.Replace(line("bad", "leaky-host.example", farFuture), `"port":5900`, `"port":0`, 1)
	dup := line("dup", "dup-host.example", farFuture)
	fx := openFixture(t, line("ok", "10.0.0.1", farFuture)+"\n"+bad+"\nnot json leaky-word\n"+dup+"\n"+dup+"\n", -1)
	if err := fx.lookup("ok"); err != nil {
		t.Fatal(err)
	}
	if err := fx.lookup("bad"); !errors.Is(err, ErrNotFound) {
		t.Errorf("bad line: %v", err)
	}
	out := fx.logs.String()
	for _, want := range []string{`"line":2`, `"line":3`, `"reason":"port must be 1 to 65535"`, `"line":5,"earlier_line":4`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	for _, secret := range []string{HashToken([]byte("bad")).Hex(), HashToken([]byte("dup")).Hex(), "leaky-host", "leaky-word", "dup-host"} {
		if strings.Contains(out, secret) {
			t.Errorf("log holds %q:\n%s", secret, out)
		}
	}
}

func TestFileManyBadLinesSummarised(t *testing.T) {
	fx := openFixture(t, strings.Repeat("x\n", 100), -1)
	if n := fx.logs.count("line skipped"); n != maxLineWarnings {
		t.Errorf("%d per-line warnings, want %d", n, maxLineWarnings)
	}
	if !strings.Contains(fx.logs.String(), `"count":80`) {
		t.Errorf("no summary:\n%s", fx.logs.String())
	}
}

func TestFileOpenErrors(t *testing.T) {
	dir := t.TempDir()
	for _, path := range []string{"", filepath.Join(dir, "missing"), dir} {
		if s, err := OpenFile(FileConfig{Path: path}); err == nil {
			s.Close()
			t.Errorf("OpenFile(%q) succeeded", path)
		}
	}
}

func TestFileRewriteInPlace(t *testing.T) {
	fx := openFixture(t, line("a", "h", farFuture)+"\n", time.Millisecond)
	write(t, fx.path, line("b", "h", farFuture)+"\n# longer now\n")
	testutil.CheckFor(t, "b after rewrite", fx.found("b"))
	testutil.CheckFor(t, "a gone after rewrite", fx.gone("a"))
}

func TestFileRenameReplace(t *testing.T) {
	fx := openFixture(t, line("a", "h", farFuture)+"\n", time.Millisecond)
	tmp := fx.path + ".tmp"
	write(t, tmp, line("b", "h", farFuture)+"\n")
	if err := os.Rename(tmp, fx.path); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, "b after rename", fx.found("b"))
	testutil.CheckFor(t, "a gone after rename", fx.gone("a"))
}

func TestFileTruncate(t *testing.T) {
	fx := openFixture(t, line("a", "h", farFuture)+"\n", time.Millisecond)
	if err := os.Truncate(fx.path, 0); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, "a gone after truncate", fx.gone("a"))
	f, err := os.OpenFile(fx.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, line("b", "h", farFuture))
	f.Close()
	testutil.CheckFor(t, "b after append", fx.found("b"))
}

// TestFileSameStat: a rewrite that keeps size, mtime and inode is still
// noticed while the mtime is recent (coarse mtime clocks); once the mtime is
// old, an unchanged stat means no re-read.
func TestFileSameStat(t *testing.T) {
	for _, tc := range []struct {
		name string
		age  time.Duration
		seen bool
	}{{"recent mtime", 0, true}, {"old mtime", time.Hour, false}} {
		t.Run(tc.name, func(t *testing.T) {
			mtime := time.Now().Add(-tc.age)
			dir := t.TempDir()
			path := filepath.Join(dir, "tokens.jsonl")
			write(t, path, line("a", "h", farFuture)+"\n")
			if err := os.Chtimes(path, mtime, mtime); err != nil {
				t.Fatal(err)
			}
			s, err := OpenFile(FileConfig{Path: path, PollInterval: -1})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			write(t, path, line("b", "h", farFuture)+"\n") // same length, same inode
			if err := os.Chtimes(path, mtime, mtime); err != nil {
				t.Fatal(err)
			}
			s.poll()
			_, err = s.Lookup(context.Background(), HashToken([]byte("b")))
			if (err == nil) != tc.seen {
				t.Errorf("lookup b after poll: %v, want seen=%v", err, tc.seen)
			}
		})
	}
}

// TestFileFailedReadKeepsRecords: while the file is missing or not a
// regular file the old records stay, with one warning per failure streak.
func TestFileFailedReadKeepsRecords(t *testing.T) {
	fx := openFixture(t, line("a", "h", farFuture)+"\n", time.Millisecond)
	if err := os.Remove(fx.path); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, "a warning", func() error {
		if fx.logs.count("re-read failed") == 0 {
			return errors.New("none yet")
		}
		return nil
	})
	for range 3 {
		if err := fx.s.Reload(); err == nil {
			t.Fatal("Reload of a missing file succeeded")
		}
	}
	if err := fx.lookup("a"); err != nil {
		t.Errorf("records lost: %v", err)
	}
	if n := fx.logs.count("re-read failed"); n != 1 {
		t.Errorf("%d warnings in one streak, want 1", n)
	}
	if err := os.Mkdir(fx.path, 0o700); err != nil { // not a regular file: still failing
		t.Fatal(err)
	}
	if err := fx.s.Reload(); err == nil || fx.lookup("a") != nil {
		t.Errorf("directory: Reload %v, lookup %v", err, fx.lookup("a"))
	}
	if err := os.Remove(fx.path); err != nil {
		t.Fatal(err)
	}
	write(t, fx.path, line("b", "h", farFuture)+"\n")
	testutil.CheckFor(t, "b after recovery", fx.found("b"))
	testutil.CheckFor(t, "recovery logged", func() error {
		if fx.logs.count("readable again") != 1 {
			return errors.New("not yet")
		}
		return nil
	})
	if n := fx.logs.count("re-read failed"); n != 1 {
		t.Errorf("%d warnings, want 1", n)
	}
}

func TestFileReload(t *testing.T) {
	fx := openFixture(t, line("a", "h", farFuture)+"\n", -1) // no watcher
	write(t, fx.path, line("b", "h", farFuture)+"\n"+line("c", "h", farFuture)+"\n")
	if err := fx.lookup("b"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("b before Reload: %v", err)
	}
	if err := fx.s.Reload(); err != nil {
		t.Fatal(err)
	}
	if fx.lookup("b") != nil || fx.lookup("c") != nil || fx.s.Len() != 2 {
		t.Errorf("after Reload: b %v, c %v, Len %d", fx.lookup("b"), fx.lookup("c"), fx.s.Len())
	}
	loaded := fx.logs.count("token file loaded")
	if err := fx.s.Reload(); err != nil || fx.logs.count("token file loaded") != loaded {
		t.Errorf("unchanged bytes were parsed again (%v)", err)
	}
}

func TestFileClose(t *testing.T) {
	fx := openFixture(t, line("a", "h", farFuture)+"\n", time.Millisecond)
	for range 2 {
		if err := fx.s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-fx.s.done:
	default:
		t.Fatal("watcher still running after Close")
	}
	if err := fx.lookup("a"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("lookup after Close: %v", err)
	}
	if err := fx.s.Reload(); err == nil {
		t.Error("Reload after Close succeeded")
	}
}

// TestFileConcurrent: lookups run while the file is rewritten and reloaded
// (for the race detector).
func TestFileConcurrent(t *testing.T) {
	fx := openFixture(t, line("a", "h", farFuture)+"\n", time.Millisecond)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 50 {
			if err := os.WriteFile(fx.path, []byte(line("a", "h", farFuture)+"\n"+strings.Repeat("#\n", i)), 0o600); err != nil {
				t.Error(err)
				return
			}
			_ = fx.s.Reload()
		}
	}()
	for {
		select {
		case <-done:
			return
		default:
			if err := fx.lookup("a"); err != nil && !errors.Is(err, ErrNotFound) {
				t.Fatal(err)
			}
		}
	}
}
