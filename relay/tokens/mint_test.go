package tokens

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestWritableStores: both writable stores (embedded, and Redis on a real
// redis-server) keep the same contract: a minted token looks up to its
// record, expiring DefaultTTL later when no TTL is asked; an invalid
// request wraps ErrInvalid and stores nothing; a revoked token is
// ErrNotFound, and so is a second revoke.
func TestWritableStores(t *testing.T) {
	clock := newClock()
	srv, db := redisDB(t)
	log, _ := newLog()
	rs := OpenRedis(RedisConfig{URL: mustURL(t, srv.URL(db)), Logger: log, Now: clock.Now})
	t.Cleanup(func() { _ = rs.Close() })
	for name, w := range map[string]Writable{"embedded": openEmbedded(t, t.TempDir(), clock, -1), "redis": rs} {
		ctx := context.Background()
		tok, rec, err := w.Mint(ctx, demoRequest)
		if err != nil || len(tok) != 43 || rec.Expires != clock.Now().Add(DefaultTTL).Unix() {
			t.Fatalf("%s: mint %q %+v %v", name, tok, rec, err)
		}
		h := HashToken([]byte(tok))
		if got, err := w.Lookup(ctx, h); err != nil || got.InstanceUUID != demoRequest.InstanceUUID || got.TokenHash != h.Hex() {
			t.Fatalf("%s: lookup %+v %v", name, got, err)
		}
		bad := demoRequest
		bad.Port = 0
		if _, _, err := w.Mint(ctx, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: port 0: %v", name, err)
		}
		bad = demoRequest
		bad.TTL = MaxTTL + time.Second
		if _, _, err := w.Mint(ctx, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: ttl over MaxTTL: %v", name, err)
		}
		if err := w.Revoke(ctx, h); err != nil {
			t.Fatalf("%s: revoke: %v", name, err)
		}
		if _, err := w.Lookup(ctx, h); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: lookup after revoke: %v", name, err)
		}
		if err := w.Revoke(ctx, h); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: second revoke: %v", name, err)
		}
	}
}

// TestReadOnlyStores: the file and Nova stores are not Writable, so the
// admin API answers a mint or a revoke with 409: their records are written
// by someone else.
func TestReadOnlyStores(t *testing.T) {
	for name, s := range map[string]Store{"file": (*FileStore)(nil), "novadb": (*NovaDB)(nil)} {
		if _, ok := s.(Writable); ok {
			t.Errorf("the %s store is Writable", name)
		}
	}
}
