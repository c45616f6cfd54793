package tokens

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
)

// Token lifetimes for Mint.
const (
	DefaultTTL = 10 * time.Minute
	MaxTTL     = 24 * time.Hour
)

// ErrInvalid wraps the reason a MintRequest was refused; the reason names a
// field, never its value.
var ErrInvalid = errors.New("invalid token request")

var errTTL = errors.New("ttl must be 0 (the default) up to 24h")

// Writable is a store that mints and revokes tokens (the embedded and
// Redis stores). Read-only stores (file:, novadb:) do not implement it:
// their records are written by someone else (Nova, a provisioning tool).
type Writable interface {
	Store
	// Mint creates a token for req and stores its record (its hash only).
	// The token is returned once, to hand to the client; it is kept
	// nowhere. A refused request's error wraps ErrInvalid, a store that
	// cannot be written ErrUnavailable.
	Mint(ctx context.Context, req MintRequest) (token string, rec Record, err error)
	// Revoke deletes the record of h: no new session opens with it.
	// ErrNotFound if there is none, ErrUnavailable (wrapped) when the
	// store cannot be written.
	Revoke(ctx context.Context, h Hash) error
}

// Both writable stores are Writable.
var (
	_ Writable = (*Embedded)(nil)
	_ Writable = (*Redis)(nil)
)

// MintRequest asks for a new token.
type MintRequest struct {
	ConsoleType        string
	Host               string
	Port               int
	InstanceUUID       string
	InternalAccessPath *string // nil: connect to Host:Port directly
	AccessURLBase      string
	TTL                time.Duration // 0 means DefaultTTL; at most MaxTTL
}

// newToken makes a token for req at now: 32 random bytes, base64url
// without padding (43 characters), and the record of its hash, validated.
// A refused request's error wraps ErrInvalid.
func newToken(req MintRequest, now time.Time) (token string, h Hash, rec Record, err error) {
	ttl := req.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	if ttl < 0 || ttl > MaxTTL {
		return "", Hash{}, Record{}, fmt.Errorf("%w: %w", ErrInvalid, errTTL)
	}
	var raw [32]byte
	_, _ = rand.Read(raw[:]) // never fails (crypto/rand)
	token = base64.RawURLEncoding.EncodeToString(raw[:])
	h = HashToken([]byte(token))
	rec = Record{
		TokenHash: h.Hex(), ConsoleType: req.ConsoleType, Host: req.Host, Port: req.Port,
		InternalAccessPath: req.InternalAccessPath, InstanceUUID: req.InstanceUUID,
		AccessURLBase: req.AccessURLBase, Expires: now.Add(ttl).Unix(),
	}
	if _, err := validate(&rec); err != nil {
		return "", Hash{}, Record{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return token, h, rec, nil
}
