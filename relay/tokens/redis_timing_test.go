package tokens

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/consoleproxy/consoleproxy/relay/reuse"
)

// BenchmarkRedisAcquireLookup is what a handshake asks of its stores: a
// token lookup plus an exclusive Acquire (then the release), against Redis
// on loopback and, in the same run for comparison, the token file with the
// in-process guard. Each iteration claims a distinct key so that an
// asynchronous release never makes the next Acquire find its own claim.
func BenchmarkRedisAcquireLookup(b *testing.B) {
	srv, db := redisDB(b)
	rc := redisClient(b, srv, db)
	const token = "tok-bench"
	h := HashToken([]byte(token))
	value := line(token, "compute-1", time.Now().Add(time.Hour).Unix())
	if err := rc.Set(context.Background(), redisTokenPrefix+h.Hex(), value, 0).Err(); err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "tokens.jsonl")
	if err := os.WriteFile(path, []byte(value+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	log, _ := newLog()
	file, err := OpenFile(FileConfig{Path: path, Logger: log, PollInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer file.Close()
	u := mustURL(b, srv.URL(db))
	rs := OpenRedis(RedisConfig{URL: u, Logger: log})
	defer rs.Close()
	rg := OpenRedisGuard(RedisGuardConfig{URL: u, Policy: reuse.Exclusive, Logger: log})
	defer rg.Close()
	b.Run("file", func(b *testing.B) { benchAcquireLookup(b, file, reuse.NewLocalGuard(reuse.Exclusive, nil), h) })
	b.Run("redis", func(b *testing.B) { benchAcquireLookup(b, rs, rg, h) })
}

// benchKeys numbers the benchmark's claims across its runs: a release is
// asynchronous, so a key of the previous run may still be claimed.
var benchKeys atomic.Uint64

func benchAcquireLookup(b *testing.B, s Store, g reuse.Guard, h Hash) {
	b.ReportAllocs()
	var k reuse.Key
	for i := 0; i < b.N; i++ {
		if _, err := s.Lookup(context.Background(), h); err != nil {
			b.Fatal(err)
		}
		binary.LittleEndian.PutUint64(k[:], benchKeys.Add(1))
		release, err := g.Acquire(k, time.Now().Add(time.Hour), nil)
		if err != nil {
			b.Fatal(err)
		}
		release()
	}
}
