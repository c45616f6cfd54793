package admin

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/internal/testutil/redistest"
	"github.com/consoleproxy/consoleproxy/relay/tokens"
)

// TestRedisMintRevoke: with a Redis token store (a real redis-server) a
// mint writes consoleproxy:token:<hash> holding the record, expiring at
// the record's expires, and the plaintext token is nowhere in Redis; the
// store then admits the token; DELETE removes the key (204), then 404; a
// Redis that is down is a 503 for both.
func TestRedisMintRevoke(t *testing.T) {
	srv, err := redistest.Start("")
	testutil.Need(t, err) // skips when redis-server is not installed
	t.Cleanup(func() { _ = srv.Close() })
	u, err := tokens.ParseRedisURL(srv.URL(0))
	if err != nil {
		t.Fatal(err)
	}
	store := tokens.OpenRedis(tokens.RedisConfig{URL: u, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Timeout: 500 * time.Millisecond})
	t.Cleanup(func() { _ = store.Close() })
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr(), DisableIdentity: true})
	t.Cleanup(func() { _ = rc.Close() })
	fx := serveAPI(t, Config{Store: store})
	ctx := context.Background()

	ans := fx.mintOK(t, mintBody)
	key := "consoleproxy:token:" + ans.TokenHash
	val, err := rc.Get(ctx, key).Result()
	if err != nil {
		t.Fatalf("GET %s: %v", key, err)
	}
	var rec tokens.Record
	if err := json.Unmarshal([]byte(val), &rec); err != nil || rec.TokenHash != ans.TokenHash || rec.Expires != ans.Expires || rec.Port != 5901 {
		t.Fatalf("stored %s: %v", val, err)
	}
	// Set relative to Redis's clock (PX): the same moment on one machine,
	// give or take a second (the truncation of expires, the round trip).
	if at, err := rc.PExpireTime(ctx, key).Result(); err != nil || at > time.Duration(ans.Expires+1)*time.Second ||
		at < time.Duration(ans.Expires-2)*time.Second {
		t.Errorf("key expires at %v (%v), want about %d s", at, err, ans.Expires)
	}
	keys, err := rc.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		v, _ := rc.Get(ctx, k).Result()
		if strings.Contains(k, ans.Token) || strings.Contains(v, ans.Token) {
			t.Errorf("the token is stored in Redis under %s", k)
		}
	}
	if got, err := store.Lookup(ctx, tokens.HashToken([]byte(ans.Token))); err != nil || got.InstanceUUID != testUUID {
		t.Fatalf("lookup: %+v %v", got, err)
	}
	if code, body := fx.do(t, "DELETE", "/v1/tokens/"+ans.TokenHash, auth, nil); code != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	if n, _ := rc.Exists(ctx, key).Result(); n != 0 {
		t.Error("the key is still there")
	}
	if code, _ := fx.do(t, "DELETE", "/v1/tokens/"+ans.TokenHash, auth, nil); code != http.StatusNotFound {
		t.Errorf("second DELETE: %d", code)
	}

	srv.Stop()
	if code, body := fx.do(t, "POST", "/v1/tokens", auth, strings.NewReader(mintBody)); code != http.StatusServiceUnavailable {
		t.Errorf("mint with Redis down: %d %s, want 503", code, body)
	}
	if code, body := fx.do(t, "DELETE", "/v1/tokens/"+ans.TokenHash, auth, nil); code != http.StatusServiceUnavailable {
		t.Errorf("revoke with Redis down: %d %s, want 503", code, body)
	}
}
