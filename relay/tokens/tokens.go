// Package tokens holds the token stores that turn a console token into a
// compute-host target: a read-only JSON Lines file (file.go), an embedded
// bbolt store (embedded.go), Nova's own database (novadb.go) and Redis
// (redis.go). The embedded and Redis stores are Writable (mint.go): the
// admin API (cmd/consoleproxy/admin) mints and revokes tokens in them. Stores
// hold and compare only SHA-256 hashes of tokens, as Nova's
// console_auth_tokens table does; neither a token nor its hash is ever logged.
//
// RedisGuard (redisguard.go) is the fleet-wide relay/reuse.Guard on the same
// Redis plumbing: --token-reuse shared by every proxy on one Redis
// (docs/fleet.md).
package tokens

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
)

// Hash is the SHA-256 of a token; stores hold and compare only hashes
// (docs/contract.md, "The token file"). It is a secret too: never log it.
type Hash [32]byte

// HashToken returns the SHA-256 of token. token is only read.
func HashToken(token []byte) Hash { return sha256.Sum256(token) }

// Hex returns h as lowercase hex, the form of Nova's token_hash column.
func (h Hash) Hex() string { return hex.EncodeToString(h[:]) }

// Record is one console authorization: the fields of Nova's
// console_auth_tokens table. A Record a store returns may share what
// TLSPort and InternalAccessPath point to with the store: read-only.
type Record struct {
	TokenHash          string  `json:"token_hash"`   // lowercase hex SHA-256 of the token (64 chars)
	ConsoleType        string  `json:"console_type"` // novnc, serial, spice-html5, … (compared by the proxy)
	Host               string  `json:"host"`         // compute host name or address
	Port               int     `json:"port"`
	TLSPort            *int    `json:"tls_port,omitempty"`
	InternalAccessPath *string `json:"internal_access_path"` // non-nil: CONNECT <path> first; checked by the dialer
	InstanceUUID       string  `json:"instance_uuid"`
	AccessURLBase      string  `json:"access_url_base,omitempty"`
	Expires            int64   `json:"expires"` // Unix seconds; refused when <= now
}

// Errors a Store's Lookup returns, possibly wrapped; callers branch with
// errors.Is.
var (
	ErrNotFound    = errors.New("token not found")
	ErrExpired     = errors.New("token expired")
	ErrUnavailable = errors.New("token store unavailable") // the caller answers 503
)

// Store looks up a token's record by hash. Implementations are safe for
// concurrent use. Lookup may block (it runs on a worker pool) and honours ctx.
type Store interface {
	// Lookup returns the record of h, or ErrNotFound, ErrExpired or
	// ErrUnavailable (possibly wrapped).
	Lookup(ctx context.Context, h Hash) (Record, error)
	// Reload re-reads what can be re-read (SIGHUP); a no-op where meaningless.
	Reload() error
	// Close releases the store; further lookups fail.
	Close() error
}

// NonBlocking marks a Store whose Lookup never waits on I/O or a peer (an
// in-memory map, a memory-mapped file): the caller may pass a context
// without a deadline and skip the timeout context's and its timer's
// allocations on every handshake (about a third of a handshake's garbage
// with the file store).
type NonBlocking interface {
	Store
	// LookupNeverBlocks is a marker; it does nothing.
	LookupNeverBlocks()
}

// Both stores are Stores, and neither blocks.
var (
	_ Store       = (*FileStore)(nil)
	_ Store       = (*Embedded)(nil)
	_ NonBlocking = (*FileStore)(nil)
	_ NonBlocking = (*Embedded)(nil)
)

// Validation errors. Their text never holds a field's value: a line may
// carry secrets by accident, and these messages reach the logs.
var (
	errNotJSON      = errors.New("not a valid JSON object")
	errWrongType    = errors.New("a field has the wrong JSON type")
	errTokenHash    = errors.New("token_hash must be 64 lowercase hex digits")
	errConsoleType  = errors.New("console_type must be 1 to 64 of [A-Za-z0-9._-]")
	errHost         = errors.New("host must be 1 to 255 printable ASCII bytes without spaces")
	errPort         = errors.New("port must be 1 to 65535")
	errTLSPort      = errors.New("tls_port must be null or 1 to 65535")
	errInstanceUUID = errors.New("instance_uuid must be 1 to 255 printable ASCII bytes without spaces")
	errExpires      = errors.New("expires must be a positive Unix time")
)

// ParseRecord parses and validates one JSON Lines record. Unknown fields are
// ignored (forward compatibility); the known ones must hold: token_hash 64
// lowercase hex digits, console_type a non-empty name, host non-empty without
// spaces or control bytes, port 1..65535, tls_port null or 1..65535,
// instance_uuid present, expires > 0. internal_access_path is not checked
// here: an invalid one is the dialer's 502 (docs/contract.md).
//
// line is only read; the Record does not alias it. Errors never include a
// field's value.
func ParseRecord(line []byte) (Record, Hash, error) {
	var r Record
	if err := json.Unmarshal(line, &r); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return Record{}, Hash{}, errWrongType
		}
		return Record{}, Hash{}, errNotJSON
	}
	h, err := validate(&r)
	if err != nil {
		return Record{}, Hash{}, err
	}
	return r, h, nil
}

// validate checks r's fields and returns the hash token_hash spells.
func validate(r *Record) (Hash, error) {
	var h Hash
	if !isLowerHex(r.TokenHash) || len(r.TokenHash) != 2*len(h) {
		return h, errTokenHash
	}
	_, _ = hex.Decode(h[:], []byte(r.TokenHash))
	switch {
	case !isName(r.ConsoleType):
		return h, errConsoleType
	case !isPrintable(r.Host, 255):
		return h, errHost
	case !isPort(r.Port):
		return h, errPort
	case r.TLSPort != nil && !isPort(*r.TLSPort):
		return h, errTLSPort
	case !isPrintable(r.InstanceUUID, 255):
		return h, errInstanceUUID
	case r.Expires <= 0:
		return h, errExpires
	}
	return h, nil
}

func isPort(p int) bool { return p >= 1 && p <= 65535 }

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// isName reports whether s is 1 to 64 of [A-Za-z0-9._-], like Nova's
// console type names.
func isName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '_' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

// isPrintable reports whether s is 1 to max bytes of printable ASCII other
// than space: no control bytes, nothing a log line or a request line could
// be confused by.
func isPrintable(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}
