package admin

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// minSecretBytes is the shortest admin secret accepted from a file.
const minSecretBytes = 16

// LoadOrCreateSecret returns the admin API secret kept in the file at path,
// creating the file (32 random bytes as hex, mode 0600, never overwriting)
// if it does not exist. A file readable or writable by group or others, one
// that is not a regular file, or one holding fewer than 16 bytes is refused.
// The secret is the file's first line; surrounding white space is not part
// of it. The returned slice is
// the caller's.
func LoadOrCreateSecret(path string) ([]byte, error) {
	secret, err := readSecret(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return secret, err
	}
	secret, err = createSecret(path)
	if errors.Is(err, fs.ErrExist) { // created by someone else meanwhile
		return readSecret(path)
	}
	return secret, err
}

// readSecret reads an existing secret file, checking its mode first.
func readSecret(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("admin secret: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("admin secret: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("admin secret %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("admin secret %s: mode %04o lets group or others in; run chmod 600 on it", path, perm)
	}
	data, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("admin secret: %w", err)
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	secret := bytes.TrimSpace(line) // the first line (CONTRACT.md: --admin-token-file)
	if len(secret) < minSecretBytes {
		return nil, fmt.Errorf("admin secret %s: shorter than %d bytes", path, minSecretBytes)
	}
	return secret, nil
}

// createSecret writes a new random secret with O_EXCL and mode 0600.
func createSecret(path string) ([]byte, error) {
	var raw [32]byte
	_, _ = rand.Read(raw[:]) // never fails (crypto/rand)
	secret := []byte(hex.EncodeToString(raw[:]))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		return nil, fmt.Errorf("admin secret: %w", err)
	}
	_, err = f.Write(append(secret, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("admin secret: %w", err)
	}
	return secret, nil
}
