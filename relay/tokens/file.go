package tokens

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// FileConfig configures a FileStore (`--token-store file:PATH`).
type FileConfig struct {
	Path         string        // the JSON Lines file (docs/contract.md, "The token file")
	PollInterval time.Duration // how often to stat the file for changes; 0 means 1s, < 0 never (Reload only)
	Logger       *slog.Logger  // nil means slog.Default(); warnings name line numbers, never content
	Now          func() time.Time
	MaxLineBytes int // longer lines are skipped with a warning; 0 means 64 KiB
}

// maxLineWarnings caps the per-line warnings of one read; the rest are
// counted in one summary line.
const maxLineWarnings = 20

// racyWindow: a file whose mtime is this close to the moment it was read may
// change again without its (size, mtime, inode) changing (coarse mtime
// clocks), so it is re-read on the next poll until its mtime is older.
const racyWindow = 2 * time.Second

// FileStore serves records from a read-only JSON Lines file that it re-reads
// when the file changes. Lookups never wait for a re-read.
type FileStore struct {
	cfg FileConfig // defaults applied; read-only after OpenFile
	log *slog.Logger
	set atomic.Pointer[fileSet] // nil once closed

	mu      sync.Mutex // serialises reads of the file; guards the fields below
	id      fileID     // the identity of the file set was read from
	known   bool       // id is valid
	racy    bool       // re-read on the next poll even if id is unchanged
	failing bool       // in a streak of failed reads (warned once)
	closed  bool

	stop      chan struct{}
	done      chan struct{} // closed when the watcher has returned
	closeOnce sync.Once
}

// fileSet is one generation of records, replaced whole.
type fileSet struct {
	recs   map[Hash]Record
	digest [sha256.Size]byte // of the file's bytes
}

// fileID tells whether a file may have changed since it was read.
type fileID struct {
	size, mtime int64
	dev, ino    uint64
}

// OpenFile reads cfg.Path now (a missing or unreadable file is an error) and
// starts a watcher that re-reads it when its size, mtime or inode changes:
// replace-by-rename, truncate and rewrite, or an edit in place. A failed
// re-read keeps the previous records.
func OpenFile(cfg FileConfig) (*FileStore, error) {
	if cfg.Path == "" {
		return nil, errors.New("token file: empty path")
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxLineBytes <= 0 {
		cfg.MaxLineBytes = 64 << 10
	}
	s := &FileStore{cfg: cfg, log: cfg.Logger, stop: make(chan struct{}), done: make(chan struct{})}
	if err := s.read(); err != nil {
		return nil, err
	}
	if cfg.PollInterval > 0 {
		go s.watch()
	} else {
		close(s.done)
	}
	return s, nil
}

// LookupNeverBlocks marks the file store NonBlocking: Lookup reads an
// in-memory map.
func (s *FileStore) LookupNeverBlocks() {}

// Lookup returns the record of h. It never blocks on a re-read.
func (s *FileStore) Lookup(ctx context.Context, h Hash) (Record, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	set := s.set.Load()
	if set == nil {
		return Record{}, ErrUnavailable
	}
	rec, ok := set.recs[h]
	return checkRecord(rec, ok, s.cfg.Now())
}

// checkRecord turns a found or missing record into Lookup's answer.
func checkRecord(rec Record, found bool, now time.Time) (Record, error) {
	switch {
	case !found:
		return Record{}, ErrNotFound
	case rec.Expires <= now.Unix():
		return Record{}, ErrExpired
	}
	return rec, nil
}

// Len returns how many records are held, expired ones included.
func (s *FileStore) Len() int {
	if set := s.set.Load(); set != nil {
		return len(set.recs)
	}
	return 0
}

// Reload re-reads the file now. On error the previous records stay.
func (s *FileStore) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("token file: store closed")
	}
	return s.note(s.readLocked())
}

// Close stops the watcher and waits for it. It is idempotent; lookups after
// Close return ErrUnavailable.
func (s *FileStore) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.done
		s.mu.Lock()
		s.closed = true
		s.set.Store(nil)
		s.mu.Unlock()
	})
	return nil
}

// watch polls the file until Close.
func (s *FileStore) watch() {
	defer close(s.done)
	t := time.NewTicker(s.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.poll()
		}
	}
}

// poll re-reads the file if it may have changed.
func (s *FileStore) poll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.known && !s.racy {
		if fi, err := os.Stat(s.cfg.Path); err == nil && idOf(fi) == s.id {
			return
		}
	}
	_ = s.note(s.readLocked())
}

// read reads the file under s.mu.
func (s *FileStore) read() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readLocked()
}

// note logs the start and the end of a streak of failed reads; it returns err.
func (s *FileStore) note(err error) error {
	switch {
	case err != nil && !s.failing:
		s.log.Warn("token file: re-read failed, keeping the previous records", "path", s.cfg.Path, "err", err.Error())
	case err == nil && s.failing:
		s.log.Info("token file: readable again", "path", s.cfg.Path)
	}
	s.failing = err != nil
	if err != nil {
		s.known = false
	}
	return err
}

// readLocked reads and parses the file and swaps the records in, unless the
// bytes are the same as last time. Must hold s.mu.
func (s *FileStore) readLocked() error {
	f, err := os.Open(s.cfg.Path)
	if err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("token file %s: not a regular file", s.cfg.Path)
	}
	start := time.Now()
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	s.id, s.known = idOf(fi), true
	s.racy = start.Sub(fi.ModTime()).Abs() < racyWindow
	digest := sha256.Sum256(data)
	if cur := s.set.Load(); cur != nil && cur.digest == digest {
		return nil
	}
	p, err := parseLines(bytes.NewReader(data), s.cfg.MaxLineBytes)
	if err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	s.warn(p)
	s.set.Store(&fileSet{recs: p.recs, digest: digest})
	s.log.Info("token file loaded", "path", s.cfg.Path, "records", len(p.recs), "skipped_lines", len(p.bad))
	return nil
}

// warn logs skipped lines and duplicates by line number, never content.
func (s *FileStore) warn(p parsed) {
	for i, b := range p.bad {
		if i == maxLineWarnings {
			s.log.Warn("token file: more lines skipped", "path", s.cfg.Path, "count", len(p.bad)-i)
			break
		}
		s.log.Warn("token file: line skipped", "path", s.cfg.Path, "line", b.line, "reason", b.reason.Error())
	}
	for i, d := range p.dups {
		if i == maxLineWarnings {
			s.log.Warn("token file: more duplicate token_hash lines", "path", s.cfg.Path, "count", len(p.dups)-i)
			break
		}
		s.log.Warn("token file: duplicate token_hash, the later line wins", "path", s.cfg.Path,
			"line", d.later, "earlier_line", d.first)
	}
}

// idOf returns the identity of a file's contents as far as stat tells.
func idOf(fi os.FileInfo) fileID {
	id := fileID{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.dev, id.ino = uint64(st.Dev), uint64(st.Ino)
	}
	return id
}
