package tokens

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// bucketTokens holds hash → value (see encodeValue).
var bucketTokens = []byte("tokens")

// EmbeddedConfig configures the embedded store.
type EmbeddedConfig struct {
	Dir           string       // holds tokens.db (mode 0600); created with mode 0700; "" means "./var"
	Logger        *slog.Logger // nil means slog.Default()
	Now           func() time.Time
	PruneInterval time.Duration // expired records are deleted this often and on open; 0 means 1m, < 0 on open only
}

// Embedded is the default token store: a bbolt database that survives
// restarts, filled by Mint (the admin API, cmd/consoleproxy/admin). Only token hashes
// are stored.
type Embedded struct {
	cfg EmbeddedConfig // defaults applied; read-only after OpenEmbedded
	log *slog.Logger
	db  *bolt.DB

	stop      chan struct{}
	done      chan struct{} // closed when the pruner has returned
	closeOnce sync.Once
	closeErr  error
}

// OpenEmbedded opens (or creates) cfg.Dir/tokens.db and prunes expired
// records. Another process holding the database makes it fail after a second.
func OpenEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.Dir == "" {
		cfg.Dir = "./var"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PruneInterval == 0 {
		cfg.PruneInterval = time.Minute
	}
	db, err := openDB(cfg)
	if err != nil {
		return nil, err
	}
	e := &Embedded{cfg: cfg, log: cfg.Logger, db: db, stop: make(chan struct{}), done: make(chan struct{})}
	if _, err := e.prune(); err != nil {
		db.Close()
		return nil, fmt.Errorf("embedded token store: %w", err)
	}
	if cfg.PruneInterval > 0 {
		go e.pruneLoop()
	} else {
		close(e.done)
	}
	return e, nil
}

// openDB creates the directory and opens the database with its bucket.
func openDB(cfg EmbeddedConfig) (*bolt.DB, error) {
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded token store: %w", err)
	}
	if fi, err := os.Stat(cfg.Dir); err == nil && fi.Mode().Perm()&0o077 != 0 {
		cfg.Logger.Warn("embedded token store: directory is open to group or others", "dir", cfg.Dir)
	}
	path := filepath.Join(cfg.Dir, "tokens.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("embedded token store %s: in use by another process", path)
	}
	if err != nil {
		return nil, fmt.Errorf("embedded token store: %w", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketTokens)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("embedded token store: %w", err)
	}
	return db, nil
}

// LookupNeverBlocks marks the embedded store NonBlocking: Lookup is a
// read transaction on a memory-mapped file (bbolt readers never wait for
// a writer's I/O).
func (e *Embedded) LookupNeverBlocks() {}

// Lookup returns the record of h.
func (e *Embedded) Lookup(ctx context.Context, h Hash) (Record, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	var rec Record
	var found bool
	err := e.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketTokens).Get(h[:])
		if v == nil {
			return nil
		}
		found = true
		var err error
		rec, err = decodeValue(v)
		return err
	})
	if err != nil {
		return Record{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return checkRecord(rec, found, e.cfg.Now())
}

// Mint creates a token for req and stores its hash (Writable). The token
// is 32 random bytes, base64url without padding (43 characters); the caller
// hands it to the client and nobody else. A refused request's error wraps
// ErrInvalid.
func (e *Embedded) Mint(ctx context.Context, req MintRequest) (token string, rec Record, err error) {
	if err := ctx.Err(); err != nil {
		return "", Record{}, err
	}
	token, h, rec, err := newToken(req, e.cfg.Now())
	if err != nil {
		return "", Record{}, err
	}
	v, err := encodeValue(rec)
	if err != nil {
		return "", Record{}, err
	}
	err = e.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketTokens).Put(h[:], v) })
	if err != nil {
		return "", Record{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return token, rec, nil
}

// Revoke deletes the record of h; ErrNotFound if there is none.
func (e *Embedded) Revoke(ctx context.Context, h Hash) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := e.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTokens)
		if b.Get(h[:]) == nil {
			return ErrNotFound
		}
		return b.Delete(h[:])
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// Len returns how many records are stored, expired ones not yet pruned
// included; -1 if the store cannot tell (closed).
func (e *Embedded) Len() int {
	n := -1
	_ = e.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketTokens).Stats().KeyN
		return nil
	})
	return n
}

// Reload is a no-op: the database is always current.
func (e *Embedded) Reload() error { return nil }

// Close stops the pruner and closes the database. It is idempotent.
func (e *Embedded) Close() error {
	e.closeOnce.Do(func() {
		close(e.stop)
		<-e.done
		e.closeErr = e.db.Close()
	})
	return e.closeErr
}

// pruneLoop deletes expired records every PruneInterval until Close.
func (e *Embedded) pruneLoop() {
	defer close(e.done)
	t := time.NewTicker(e.cfg.PruneInterval)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			if _, err := e.prune(); err != nil {
				e.log.Warn("embedded token store: prune failed", "err", err.Error())
			}
		}
	}
}

// prune deletes the records whose expiry has passed (and any that cannot
// be decoded) and returns how many.
func (e *Embedded) prune() (int, error) {
	now := e.cfg.Now().Unix()
	var dead [][]byte
	err := e.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTokens).ForEach(func(k, v []byte) error {
			if len(v) < 8 || int64(binary.BigEndian.Uint64(v)) <= now {
				dead = append(dead, append([]byte(nil), k...))
			}
			return nil
		})
	})
	if err != nil || len(dead) == 0 {
		return 0, err
	}
	err = e.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTokens)
		for _, k := range dead {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	e.log.Debug("embedded token store: pruned expired tokens", "count", len(dead))
	return len(dead), nil
}

// encodeValue stores a record as its expiry (8 bytes, big endian, so that
// pruning reads no JSON) followed by its JSON.
func encodeValue(rec Record) ([]byte, error) {
	j, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(j)), uint64(rec.Expires))
	return append(v, j...), nil
}

// decodeValue reverses encodeValue. v is borrowed (bbolt's, valid only in
// its transaction); the Record does not alias it.
func decodeValue(v []byte) (Record, error) {
	if len(v) < 8 {
		return Record{}, errors.New("corrupt record")
	}
	rec, _, err := ParseRecord(v[8:])
	return rec, err
}
