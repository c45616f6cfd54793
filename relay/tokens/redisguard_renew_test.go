package tokens

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/relay/reuse"
)

// acquireN takes n exclusive claims on g (16 at a time, the pool's size)
// and returns their keys. A claim refused as unavailable (a SET past a
// deadline scaled down for the test) is tried again, a few times, with
// another token: the SET may have landed.
func acquireN(t testing.TB, g *RedisGuard, n int) []string {
	t.Helper()
	keys := make([]string, n)
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 16 {
				var tok string
				var err error
				for try := 0; try < 5; try++ {
					tok = fmt.Sprintf("tok-many-%d-%d", i, try)
					if _, err = g.Acquire(keyOf(tok), time.Now().Add(time.Hour), nil); !errors.Is(err, ErrUnavailable) {
						break
					}
				}
				if err != nil {
					errs <- err
					return
				}
				keys[i] = liveKey(tok)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("acquire: %v", err)
	}
	return keys
}

// allAlive checks in real Redis, with GET and PTTL over every key, that
// each claim is still there, still g's, with a lease left no longer than
// the lease: it was renewed (PEXPIRE), not set without one.
func allAlive(t testing.TB, rc *redis.Client, g *RedisGuard, keys []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	gone, foreign, badTTL := 0, 0, 0
	for from := 0; from < len(keys); from += 1000 {
		chunk := keys[from:min(from+1000, len(keys))]
		pipe := rc.Pipeline()
		gets := make([]*redis.StringCmd, len(chunk))
		ttls := make([]*redis.DurationCmd, len(chunk))
		for i, k := range chunk {
			gets[i], ttls[i] = pipe.Get(ctx, k), pipe.PTTL(ctx, k)
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			t.Fatal(err)
		}
		for i := range chunk {
			v, err := gets[i].Result()
			switch {
			case errors.Is(err, redis.Nil):
				gone++
				continue
			case err != nil:
				t.Fatal(err)
			case !strings.HasPrefix(v, g.prefix):
				foreign++
			}
			if ttl := ttls[i].Val(); ttl <= 0 || ttl > g.cfg.Lease {
				badTTL++
			}
		}
	}
	if gone+foreign+badTTL > 0 {
		t.Fatalf("of %d claims: %d gone from Redis, %d held by another owner, %d with a lease outside (0, %v]",
			len(keys), gone, foreign, badTTL, g.cfg.Lease)
	}
}

// slowLink relays TCP to a Redis through a link of a given bandwidth
// toward Redis (answers go back at full speed): a Redis farther away, where
// a pipeline's time grows with its bytes. It models the link's speed by
// holding each chunk for its transfer time.
type slowLink struct {
	ln     net.Listener
	target string
	rate   atomic.Int64 // bytes per second toward Redis, every connection together; 0: no limit

	mu   sync.Mutex
	free time.Time // when the link is free again
}

func startSlowLink(t testing.TB, target string) *slowLink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &slowLink{ln: ln, target: target}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, up)
			mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); l.pace(up, c); up.Close() }()
			go func() { defer wg.Done(); _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l
}

func (l *slowLink) addr() string { return l.ln.Addr().String() }

// pace copies src to dst in chunks, each sent when the link has carried
// the ones before it at rate.
func (l *slowLink) pace(dst io.Writer, src io.Reader) {
	buf := make([]byte, 16<<10)
	for {
		n, err := src.Read(buf)
		if rate := l.rate.Load(); n > 0 && rate > 0 {
			l.mu.Lock()
			start := time.Now()
			if start.Before(l.free) {
				start = l.free
			}
			l.free = start.Add(time.Duration(n) * time.Second / time.Duration(rate))
			at := l.free
			l.mu.Unlock()
			time.Sleep(time.Until(at)) // the transfer time itself, not a wait for another goroutine
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// waitPast polls until d has passed since from (no sleep to synchronise:
// the condition is the clock itself).
func waitPast(t testing.TB, from time.Time, d time.Duration) {
	t.Helper()
	if !testutil.Eventually(time.Until(from.Add(d+time.Minute)), func() bool { return time.Since(from) >= d }) {
		t.Fatal("the clock stalled")
	}
}

// TestRedisGuardRenews20000: one guard holding 20,000 exclusive claims keeps
// every one of them: more than a lease after the last was taken every key
// is still in Redis, still the guard's, its PTTL refreshed, and none lapsed
// meanwhile. Redis is behind a 4 MB/s link (slowLink) and the deadline is
// 500 ms: 20,000 renewals were about 4 MB, one second on that link, so the
// guard that sent them all in one pipeline under one deadline lost its
// renewals round after round, and claims lapsed; a batch of 500 is about
// 63 KB, 15 ms.
func TestRedisGuardRenews20000(t *testing.T) {
	if testing.Short() {
		t.Skip("20,000 claims")
	}
	const claims = 20000
	srv := ownRedis(t, "")
	rc := redisClient(t, srv, 0)
	link := startSlowLink(t, srv.Addr())
	g := guardOn(t, "redis://"+link.addr()+"/0", RedisGuardConfig{Policy: reuse.Exclusive,
		Lease: 6 * time.Second, Timeout: 500 * time.Millisecond})
	keys := acquireN(t, g, claims) // at full speed: the claims are not what is tested
	link.rate.Store(4 << 20)
	waitPast(t, time.Now(), g.cfg.Lease*3/2)
	allAlive(t, rc, g, keys)
	if g.Lapsed() != 0 || g.Lost() != 0 {
		t.Fatalf("%d claims lapsed and were taken back, %d lost", g.Lapsed(), g.Lost())
	}
	t.Logf("%d rounds, %d claim renewals failed and retried", g.renewals.Load(), g.RenewalsFailed())
}

// TestRedisGuardRenewalBatchFails: Redis paused (CLIENT PAUSE) for longer
// than a batch's deadline makes batches fail; they are counted, retried at
// the following slots, the other batches are not dropped, and after the
// pause every claim is renewed: more than a lease later all are still in
// Redis and none lapsed.
func TestRedisGuardRenewalBatchFails(t *testing.T) {
	const claims = 5000 // 10 batches
	srv := ownRedis(t, "")
	rc := redisClient(t, srv, 0)
	g := guardOn(t, srv.URL(0), RedisGuardConfig{Policy: reuse.Exclusive, Lease: 6 * time.Second,
		Timeout: 250 * time.Millisecond})
	keys := acquireN(t, g, claims)
	ctx := context.Background()
	// Paused for 2.5 s, longer than a batch deadline (250 ms) and than the
	// renewal interval (2 s), so a slot falls inside it whatever its phase;
	// shorter than the lease (6 s).
	var paused time.Time
	testutil.CheckFor(t, "a renewal batch failed in the pause", func() error {
		if g.RenewalsFailed() > 0 {
			return nil
		}
		if time.Since(paused) > 3*time.Second {
			paused = time.Now()
			if err := rc.Do(ctx, "CLIENT", "PAUSE", 2500, "ALL").Err(); err != nil {
				t.Fatal(err)
			}
		}
		return errors.New("not yet")
	})
	after := g.renewals.Load()
	waitPast(t, paused, 2500*time.Millisecond+g.cfg.Lease)
	testutil.CheckFor(t, "a whole round after the pause", func() error {
		if g.renewals.Load() < after+1 {
			return errors.New("not yet")
		}
		return nil
	})
	allAlive(t, rc, g, keys)
	if g.Lapsed() != 0 || g.Lost() != 0 {
		t.Fatalf("%d claims lapsed and were taken back, %d lost", g.Lapsed(), g.Lost())
	}
	failed := g.RenewalsFailed()
	if failed%maxRenewBatch != 0 {
		t.Errorf("%d claim renewals failed: not whole batches", failed)
	}
	t.Logf("%d claim renewals failed in the pause and were retried (batches of %d)", failed, maxRenewBatch)
}

// perClaimRenew is the renewal script as it was before batches: one call
// per claim (KEYS[1], ARGV[1] the owner, ARGV[2] the lease), for the
// benchmark's comparison.
var perClaimRenew = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0`)

// BenchmarkRedisGuardRenewRound: one renewal round of 20,000 claims on
// loopback Redis. "batches" is the guard's round (startRound, renewSlot),
// its batches back to back (the guard spreads them over half the
// interval); "one-pipeline" is how the guard renewed before, 20,000
// per-claim script calls in one pipeline; "pipelines-of-500" the same calls
// 500 to a pipeline.
func BenchmarkRedisGuardRenewRound(b *testing.B) {
	const claims = 20000
	srv := ownRedis(b, "")
	rc := redisClient(b, srv, 0)
	// A lease of an hour: the guard's own rounds stay out of the way.
	g := guardOn(b, srv.URL(0), RedisGuardConfig{Policy: reuse.Exclusive, Lease: time.Hour, Timeout: 10 * time.Second})
	acquireN(b, g, claims)
	g.mu.Lock()
	all := make([]claim, 0, len(g.held))
	for _, c := range g.held {
		all = append(all, c)
	}
	g.mu.Unlock()
	measure := func(b *testing.B, round func() int) {
		b.ReportAllocs()
		trips := 0
		in := redisInput(b, rc)
		for b.Loop() {
			trips += round()
		}
		b.ReportMetric(float64(trips)/float64(b.N), "round-trips/op")
		b.ReportMetric(float64(redisInput(b, rc)-in)/float64(b.N), "redis-bytes-in/op")
	}
	b.Run("batches", func(b *testing.B) {
		measure(b, func() int {
			var r renewRound
			g.startRound(&r, 0)
			trips := 1
			for ; g.renewSlot(&r); trips++ {
			}
			return trips
		})
		if g.RenewalsFailed() != 0 {
			b.Fatalf("%d renewals failed", g.RenewalsFailed())
		}
	})
	if err := perClaimRenew.Load(context.Background(), rc).Err(); err != nil {
		b.Fatal(err)
	}
	b.Run("one-pipeline", func(b *testing.B) {
		measure(b, func() int {
			if _, err := g.scripts(perClaimRenew, all); err != nil {
				b.Fatal(err)
			}
			return 1
		})
	})
	b.Run("pipelines-of-500", func(b *testing.B) {
		measure(b, func() int {
			trips := 0
			for i := 0; i < len(all); i += maxRenewBatch {
				if _, err := g.scripts(perClaimRenew, all[i:min(i+maxRenewBatch, len(all))]); err != nil {
					b.Fatal(err)
				}
				trips++
			}
			return trips
		})
	})
}

// redisInput is the bytes Redis has read from its clients (INFO stats).
func redisInput(t testing.TB, rc *redis.Client) int64 {
	t.Helper()
	info, err := rc.Info(context.Background(), "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "total_net_input_bytes:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no total_net_input_bytes in INFO stats")
	return 0
}
