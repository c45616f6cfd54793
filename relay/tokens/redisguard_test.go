package tokens

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/relay/reuse"
)

// guardOn opens a guard on spec for this test.
func guardOn(t testing.TB, spec string, cfg RedisGuardConfig) *RedisGuard {
	t.Helper()
	cfg.URL = mustURL(t, spec)
	g := OpenRedisGuard(cfg)
	t.Cleanup(func() { _ = g.Close() })
	return g
}

func keyOf(token string) reuse.Key { return reuse.Key(HashToken([]byte(token))) }

func liveKey(token string) string { return redisLivePrefix + HashToken([]byte(token)).Hex() }

// TestRedisGuardExclusive: two proxies' guards on one Redis: a token live
// on A is refused on B (ErrTokenInUse) and accepted on B once A releases;
// the claim outlives its lease while renewed; a release twice is harmless.
func TestRedisGuardExclusive(t *testing.T) {
	srv, db := redisDB(t)
	rc := redisClient(t, srv, db)
	log, logs := newLog()
	cfg := RedisGuardConfig{Policy: reuse.Exclusive, Lease: 300 * time.Millisecond, Logger: log}
	a, b := guardOn(t, srv.URL(db), cfg), guardOn(t, srv.URL(db), cfg)
	exp := time.Now().Add(time.Hour)
	relA, err := a.Acquire(keyOf("tok-x"), exp, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Acquire(keyOf("tok-x"), exp, nil); !errors.Is(err, reuse.ErrTokenInUse) {
		t.Fatalf("live on A, B: %v, want ErrTokenInUse", err)
	}
	if _, err := a.Acquire(keyOf("tok-x"), exp, nil); !errors.Is(err, reuse.ErrTokenInUse) {
		t.Fatalf("live on A, A again: %v, want ErrTokenInUse", err)
	}
	start := a.renewals.Load()
	testutil.CheckFor(t, "renewals past the lease", func() error {
		if a.renewals.Load() < start+4 {
			return errors.New("not yet")
		}
		return nil
	})
	if owner, ttl := keyState(t, rc, liveKey("tok-x")); !strings.HasPrefix(owner, a.prefix) || ttl <= 0 {
		t.Fatalf("after renewals: owner %q ttl %v", owner, ttl)
	}
	relA()
	relA()
	var relB func()
	testutil.CheckFor(t, "B after A released", func() (err error) {
		relB, err = b.Acquire(keyOf("tok-x"), exp, nil)
		return err
	})
	relA() // A's late release must not delete B's claim
	if _, err := a.Acquire(keyOf("tok-x"), exp, nil); !errors.Is(err, reuse.ErrTokenInUse) {
		t.Fatalf("live on B, A: %v, want ErrTokenInUse", err)
	}
	relB()
	testutil.CheckFor(t, "key deleted", func() error {
		if v, _ := keyState(t, rc, liveKey("tok-x")); v != "" {
			return errors.New("still there")
		}
		return nil
	})
	noSecrets(t, logs.String(), "tok-x")
}

// noSecrets fails if a token, its hash or a key holding it is in logs.
func noSecrets(t testing.TB, logs string, tokens ...string) {
	t.Helper()
	for _, tok := range tokens {
		if strings.Contains(logs, tok) || strings.Contains(logs, HashToken([]byte(tok)).Hex()) {
			t.Fatalf("a token or its hash reached the log:\n%s", logs)
		}
	}
}

// TestRedisGuardSingleUse: a token used on A is refused on B until it
// expires (the key expires with the token); release is a no-op.
func TestRedisGuardSingleUse(t *testing.T) {
	srv, db := redisDB(t)
	rc := redisClient(t, srv, db)
	cfg := RedisGuardConfig{Policy: reuse.SingleUse}
	a, b := guardOn(t, srv.URL(db), cfg), guardOn(t, srv.URL(db), cfg)
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	rel, err := a.Acquire(keyOf("tok-once"), exp, nil)
	if err != nil {
		t.Fatal(err)
	}
	rel()
	for _, g := range []*RedisGuard{a, b} {
		if _, err := g.Acquire(keyOf("tok-once"), exp, nil); !errors.Is(err, reuse.ErrTokenInUse) {
			t.Fatalf("used: %v, want ErrTokenInUse", err)
		}
	}
	at, err := rc.ExpireTime(context.Background(), redisUsedPrefix+HashToken([]byte("tok-once")).Hex()).Result()
	if err != nil || at != time.Duration(exp.Unix())*time.Second {
		t.Fatalf("used key expires at %v (%v), want the token's expiry %v", at, err, exp.Unix())
	}
}

// TestRedisGuardShared: shared lets any number of sessions in, and still
// asks Redis whether the token is revoked: without Redis it cannot tell,
// and refuses with ErrUnavailable (503), never ErrTokenInUse.
func TestRedisGuardShared(t *testing.T) {
	srv, db := redisDB(t)
	g := guardOn(t, srv.URL(db), RedisGuardConfig{Policy: reuse.Shared})
	for i := 0; i < 2; i++ {
		rel, err := g.Acquire(keyOf("tok-shared"), time.Now().Add(time.Hour), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer rel()
	}
	down := guardOn(t, "redis://"+closedAddr(t), RedisGuardConfig{Policy: reuse.Shared, Timeout: time.Second})
	if _, err := down.Acquire(keyOf("tok-shared"), time.Now().Add(time.Hour), nil); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("shared, Redis down: %v, want ErrUnavailable", err)
	}
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	return ln.Addr().String()
}

// TestRedisGuardUnreachable: without Redis, Acquire refuses with an error
// that is ErrUnavailable and not ErrTokenInUse (deny by default, 503), for
// both policies that need Redis, logging one line, never the key.
func TestRedisGuardUnreachable(t *testing.T) {
	for _, p := range []reuse.Policy{reuse.Exclusive, reuse.SingleUse} {
		t.Run(p.String(), func(t *testing.T) {
			log, logs := newLog()
			g := guardOn(t, "redis://:pw-s3cret@"+closedAddr(t), RedisGuardConfig{Policy: p, Logger: log, Timeout: time.Second})
			for i := 0; i < 3; i++ {
				_, err := g.Acquire(keyOf("tok-down"), time.Now().Add(time.Hour), nil)
				if err == nil || errors.Is(err, reuse.ErrTokenInUse) || !errors.Is(err, ErrUnavailable) {
					t.Fatalf("Redis down: %v, want ErrUnavailable", err)
				}
			}
			if n := logs.count("redis reuse store unavailable"); n != 1 {
				t.Errorf("%d outage lines, want 1:\n%s", n, logs)
			}
			noSecrets(t, logs.String(), "tok-down", "pw-s3cret")
		})
	}
}

// TestRedisGuardReleaseQueueFull: release never blocks. With the guard's
// goroutine stuck on an unanswered command and the queue full, a release
// returns at once, is counted, and leaves its claim to lapse with its lease
// (not renewed, not deleted); the queued one still runs once Redis answers.
func TestRedisGuardReleaseQueueFull(t *testing.T) {
	srv, db := redisDB(t)
	rc := redisClient(t, srv, db)
	fw := startForwarder(t, srv.Addr())
	log, logs := newLog()
	g := guardOn(t, "redis://"+fw.addr()+"/"+strconv.Itoa(db), RedisGuardConfig{Policy: reuse.Exclusive,
		ReleaseQueue: 1, Timeout: 10 * time.Second, Logger: log})
	rels := map[string]func(){}
	for _, tok := range []string{"tok-q1", "tok-q2", "tok-q3"} {
		rel, err := g.Acquire(keyOf(tok), time.Now().Add(time.Hour), nil)
		if err != nil {
			t.Fatal(err)
		}
		rels[tok] = rel
	}
	fw.stall()
	rels["tok-q1"]() // the goroutine takes it and waits for an answer
	testutil.CheckFor(t, "the goroutine waiting for Redis with the first release", func() error {
		if len(g.releases) != 0 || fw.heldBytes() == 0 {
			return errors.New("the release is not on the wire yet")
		}
		return nil
	})
	rels["tok-q2"]() // fills the queue
	rels["tok-q3"]() // dropped
	if g.Dropped() != 1 {
		t.Fatalf("dropped %d, want 1", g.Dropped())
	}
	if owner, ttl := keyState(t, rc, liveKey("tok-q3")); owner == "" || ttl <= 0 || ttl > DefaultRedisLease {
		t.Fatalf("dropped claim: owner %q ttl %v, want it left to its lease", owner, ttl)
	}
	fw.unstall()
	testutil.CheckFor(t, "the queued release", func() error {
		if v, _ := keyState(t, rc, liveKey("tok-q2")); v != "" {
			return errors.New("still there")
		}
		return nil
	})
	g.mu.Lock()
	held := len(g.held)
	g.mu.Unlock()
	if held != 0 {
		t.Fatalf("%d claims still renewed after release", held)
	}
	if n := logs.count("release queue full"); n != 1 {
		t.Errorf("%d queue-full lines, want 1:\n%s", n, logs)
	}
	noSecrets(t, logs.String(), "tok-q1", "tok-q2", "tok-q3")
}

// TestRedisGuardReleaseRedisDown: Redis unreachable at release: the release
// returns, nothing hangs (Close returns), and the claim disappears by its
// lease, since nobody renews it.
func TestRedisGuardReleaseRedisDown(t *testing.T) {
	srv, db := redisDB(t)
	rc := redisClient(t, srv, db)
	fw := startForwarder(t, srv.Addr())
	g := OpenRedisGuard(RedisGuardConfig{URL: mustURL(t, "redis://"+fw.addr()+"/"+strconv.Itoa(db)),
		Policy: reuse.Exclusive, Lease: 300 * time.Millisecond, Timeout: time.Second})
	rel, err := g.Acquire(keyOf("tok-lapse"), time.Now().Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := keyState(t, rc, liveKey("tok-lapse")); v == "" {
		t.Fatal("no claim")
	}
	fw.cut()
	rel()
	testutil.CheckFor(t, "the claim to lapse", func() error {
		if v, _ := keyState(t, rc, liveKey("tok-lapse")); v != "" {
			return errors.New("still there")
		}
		return nil
	})
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRedisGuardReclaims: when Redis loses the claims of live sessions (a
// restart without persistence, its script cache gone too), the next
// renewal claims them again.
func TestRedisGuardReclaims(t *testing.T) {
	srv, db := redisDB(t)
	rc := redisClient(t, srv, db)
	g := guardOn(t, srv.URL(db), RedisGuardConfig{Policy: reuse.Exclusive, Lease: 300 * time.Millisecond})
	if _, err := g.Acquire(keyOf("tok-re"), time.Now().Add(time.Hour), nil); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := rc.Del(ctx, liveKey("tok-re")).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, "the claim back", func() error {
		if owner, _ := keyState(t, rc, liveKey("tok-re")); !strings.HasPrefix(owner, g.prefix) {
			return errors.New("not yet")
		}
		return nil
	})
	// Another session's claim is left alone and counted.
	if err := rc.Set(ctx, liveKey("tok-re"), "someone-else", 0).Err(); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, "the loss counted", func() error {
		if g.Lost() == 0 {
			return errors.New("not yet")
		}
		return nil
	})
	if owner, _ := keyState(t, rc, liveKey("tok-re")); owner != "someone-else" {
		t.Fatalf("owner %q: another session's claim was overwritten", owner)
	}
}

// An outage's reason never carries the token's hash, whether Redis's error
// quotes a key holding it or the bare hash (a script's argument): the log
// and the 503's error see "<token_hash>".
func TestRedisGuardOutageHidesHash(t *testing.T) {
	g := guardOn(t, "redis://127.0.0.1:1/0", RedisGuardConfig{Policy: reuse.Exclusive}) // never dialled here
	k := keyOf("tok-hidden")
	hex := Hash(k).Hex()
	for _, msg := range []string{"ERR on key " + redisRevokedPrefix + hex, "ERR script: revoke " + hex} {
		err := g.unavailable(errors.New(msg), k)
		if strings.Contains(err.Error(), hex) || !strings.Contains(err.Error(), "<token_hash>") {
			t.Fatalf("%q became %q", msg, err)
		}
	}
}
