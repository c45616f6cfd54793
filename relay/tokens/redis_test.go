package tokens

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

// TestParseRedisURL: redis:// and rediss:// with user, password and
// database; anything else refused, and no error quotes the URL.
func TestParseRedisURL(t *testing.T) {
	for _, tc := range []struct {
		spec, redacted string
		db             int
		tls            bool
	}{
		{"redis://127.0.0.1:6379", "redis://127.0.0.1:6379", 0, false},
		{"redis://:s3cret@127.0.0.1:6380/3", "redis://:xxxxx@127.0.0.1:6380/3", 3, false},
		{"rediss://proxy:s3cret@redis.example.net:6380/1", "rediss://proxy:xxxxx@redis.example.net:6380/1", 1, true},
		// The query (go-redis options) is never logged: it may carry credentials.
		{"redis://:s3cret@127.0.0.1:6380/2?client_name=s3cret&dial_timeout=2s", "redis://:xxxxx@127.0.0.1:6380/2?…", 2, false},
	} {
		u, err := ParseRedisURL(tc.spec)
		if err != nil {
			t.Fatalf("%s: %v", tc.redacted, err)
		}
		if u.String() != tc.redacted || u.opts.DB != tc.db || (u.opts.TLSConfig != nil) != tc.tls {
			t.Errorf("%s: got %s db %d tls %v", tc.redacted, u, u.opts.DB, u.opts.TLSConfig != nil)
		}
	}
	for _, spec := range []string{"", "redis://", "http://:s3cret@h:1", "redis://:s3cret@h:port", "redis://:s3cret@h:1/x",
		"unix:///tmp/s3cret.sock", "redis://:s3cret@h:1/0?dial_timeout=s3cret"} {
		_, err := ParseRedisURL(spec)
		if err == nil {
			t.Errorf("%q accepted", spec)
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error quotes the URL: %v", err)
		}
	}
}

// TestRedisLookup: a valid record, an unknown token, an expired one, and
// values that are not a record for their key (refused as unknown, with a
// warning that quotes neither value, key nor hash).
func TestRedisLookup(t *testing.T) {
	srv, db := redisDB(t)
	rc := redisClient(t, srv, db)
	log, logs := newLog()
	clock := newClock()
	s := OpenRedis(RedisConfig{URL: mustURL(t, srv.URL(db)), Logger: log, Now: clock.Now})
	defer s.Close()
	ctx := context.Background()
	put := func(token, value string) {
		if err := rc.Set(ctx, redisTokenPrefix+HashToken([]byte(token)).Hex(), value, time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}
	now := clock.Now().Unix()
	put("tok-valid", line("tok-valid", "compute-1", now+60))
	put("tok-expired", line("tok-expired", "compute-1", now))
	put("tok-notjson", `{"token_hash":`)
	put("tok-badport", strings.Replace(line("tok-badport", "compute-1", now+60), `"port":5900`, `"port":0`, 1))
	put("tok-otherhash", line("tok-valid", "compute-1", now+60))
	if err := rc.RPush(ctx, redisTokenPrefix+HashToken([]byte("tok-list")).Hex(), "x").Err(); err != nil {
		t.Fatal(err)
	}
	rec, err := s.Lookup(ctx, HashToken([]byte("tok-valid")))
	if err != nil || rec.Host != "compute-1" || rec.Port != 5900 || rec.Expires != now+60 {
		t.Fatalf("valid: %+v %v", rec, err)
	}
	for token, want := range map[string]error{"tok-unknown": ErrNotFound, "tok-expired": ErrExpired,
		"tok-notjson": ErrNotFound, "tok-badport": ErrNotFound, "tok-otherhash": ErrNotFound, "tok-list": ErrNotFound} {
		if _, err := s.Lookup(ctx, HashToken([]byte(token))); !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", token, err, want)
		}
	}
	if n := logs.count("redis token store: a record is invalid"); n != 4 {
		t.Errorf("%d invalid-record warnings, want 4:\n%s", n, logs)
	}
	for _, token := range []string{"tok-valid", "tok-notjson", "tok-badport", "tok-otherhash", "tok-list"} {
		if h := HashToken([]byte(token)).Hex(); strings.Contains(logs.String(), h) || strings.Contains(logs.String(), token) {
			t.Fatalf("a token or its hash reached the log:\n%s", logs)
		}
	}
	if strings.Contains(logs.String(), `"port":0`) {
		t.Fatalf("a value reached the log:\n%s", logs)
	}
}

// TestRedisOutage: the store starts while Redis is down (503s, one line),
// serves once Redis is up, answers 503 again when Redis is killed and
// recovers when it is back on the same port, without a restart; the
// password never reaches the log, the redacted URL does.
func TestRedisOutage(t *testing.T) {
	const password = "pa:ss/w@rd%s3cret"
	srv := ownRedis(t, password)
	srv.Stop()
	log, logs := newLog()
	clock := newClock()
	s := OpenRedis(RedisConfig{URL: mustURL(t, srv.URL(0)), Logger: log, Timeout: time.Second, Now: clock.Now})
	defer s.Close()
	h := HashToken([]byte("tok-outage"))
	lookup := func() error { _, err := s.Lookup(context.Background(), h); return err }
	for i := 0; i < 3; i++ {
		if err := lookup(); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("down at start-up: %v", err)
		}
	}
	put := func() {
		rc := redisClient(t, srv, 0)
		err := rc.Set(context.Background(), redisTokenPrefix+h.Hex(), line("tok-outage", "compute-1", time.Now().Add(time.Hour).Unix()), 0).Err()
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	put()
	testutil.CheckFor(t, "recovery after start-up", lookup)
	clock.Advance(time.Minute) // past LogInterval: the next outage gets its line
	srv.Stop()
	for i := 0; i < 3; i++ {
		if err := lookup(); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("killed: %v", err)
		}
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	put() // no persistence: the writer writes again
	testutil.CheckFor(t, "recovery after the restart", lookup)
	if n := logs.count("redis token store unavailable"); n != 2 {
		t.Errorf("%d outage lines for two outages of 3 lookups each, want 2:\n%s", n, logs)
	}
	if n := logs.count("redis token store available again"); n != 2 {
		t.Errorf("%d recovery lines, want 2:\n%s", n, logs)
	}
	for _, secret := range []string{password, url.QueryEscape(password), url.PathEscape(password), h.Hex()} {
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("log contains a secret:\n%s", logs)
		}
	}
	if !strings.Contains(logs.String(), "xxxxx@127.0.0.1") {
		t.Errorf("log lacks the redacted URL:\n%s", logs)
	}
}
