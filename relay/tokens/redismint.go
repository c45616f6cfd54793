package tokens

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Mint creates a token for req and writes its record to Redis (Writable):
// the key consoleproxy:token:<hash> holds the record's JSON (a token-file
// line) and expires at the record's expires (as far as Redis's clock
// agrees with this proxy's), so Redis drops it when it can no longer open
// a session. The token itself is written nowhere. An
// existing key is never overwritten (SET NX: 32 random bytes do not
// collide; a collision is an error, not a silent replacement).
func (s *Redis) Mint(ctx context.Context, req MintRequest) (token string, rec Record, err error) {
	token, h, rec, err := newToken(req, s.cfg.Now())
	if err != nil {
		return "", Record{}, err
	}
	val, err := json.Marshal(rec)
	if err != nil {
		return "", Record{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	hash := h.Hex()
	// The expiry is relative (PX), counted on Redis's clock: an absolute
	// EXAT would drop the key at once from a Redis whose clock runs ahead
	// of this proxy's by more than the token's lifetime.
	ttl := time.Unix(rec.Expires, 0).Sub(s.cfg.Now())
	if ttl < time.Millisecond { // PX 0 would be no expiry at all
		return "", Record{}, fmt.Errorf("%w: %w", ErrInvalid, errTTL)
	}
	err = s.rdb.SetArgs(ctx, redisTokenPrefix+hash, val, redis.SetArgs{Mode: "NX", TTL: ttl}).Err()
	if err != nil {
		reason := describe(err, hash)
		if errors.Is(err, redis.Nil) {
			reason = "the key exists"
		} else {
			s.health.fail(reason)
		}
		return "", Record{}, fmt.Errorf("%w: %s", ErrUnavailable, reason)
	}
	s.health.ok()
	return token, rec, nil
}

// Revoke deletes the record of h from Redis: ErrNotFound if there was none.
func (s *Redis) Revoke(ctx context.Context, h Hash) error {
	hash := h.Hex()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	n, err := s.rdb.Del(ctx, redisTokenPrefix+hash).Result()
	if err != nil {
		reason := describe(err, hash)
		s.health.fail(reason)
		return fmt.Errorf("%w: %s", ErrUnavailable, reason)
	}
	s.health.ok()
	if n == 0 {
		return ErrNotFound
	}
	return nil
}
