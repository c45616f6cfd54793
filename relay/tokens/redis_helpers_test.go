package tokens

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/internal/testutil/redistest"
)

// sharedRedis is the redis-server the package's tests share (each test on
// its own database number); TestMain stops it. Tests that stop Redis start
// their own.
var sharedRedis struct {
	once sync.Once
	srv  *redistest.Server
	err  error
	mu   sync.Mutex
	next int // the next database number
}

// redisDB returns the shared server and a database number no other test
// uses (Redis has 16).
func redisDB(t testing.TB) (*redistest.Server, int) {
	t.Helper()
	sharedRedis.once.Do(func() { sharedRedis.srv, sharedRedis.err = redistest.Start("") })
	if sharedRedis.err != nil {
		testutil.Need(t, fmt.Errorf("redis-server: %w", sharedRedis.err))
	}
	sharedRedis.mu.Lock()
	defer sharedRedis.mu.Unlock()
	db := sharedRedis.next % 16
	sharedRedis.next++
	return sharedRedis.srv, db
}

func stopRedis() {
	if sharedRedis.srv != nil {
		_ = sharedRedis.srv.Close()
	}
}

// ownRedis starts a server for this test alone.
func ownRedis(t testing.TB, password string) *redistest.Server {
	t.Helper()
	srv, err := redistest.Start(password)
	if err != nil {
		testutil.Need(t, fmt.Errorf("redis-server: %w", err))
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

// redisClient is the test's own client to srv (never through a forwarder).
func redisClient(t testing.TB, srv *redistest.Server, db int) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), Password: srv.Password, DB: db, DisableIdentity: true})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func mustURL(t testing.TB, spec string) RedisURL {
	t.Helper()
	u, err := ParseRedisURL(spec)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// forwarder relays TCP to a Redis so a test can make Redis unreachable for
// a guard while Redis itself goes on (and expires keys): stall holds every
// byte (of the connections open and of new ones) without forwarding it,
// cut refuses connections.
type forwarder struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cond   *sync.Cond // signalled when stuck changes
	conns  []net.Conn
	stuck  bool
	held   int // bytes that arrived while stuck
}

func startForwarder(t testing.TB, target string) *forwarder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &forwarder{ln: ln, target: target}
	f.cond = sync.NewCond(&f.mu)
	go f.accept()
	t.Cleanup(f.cut)
	return f
}

func (f *forwarder) addr() string { return f.ln.Addr().String() }

func (f *forwarder) accept() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.conns = append(f.conns, c)
		f.mu.Unlock()
		go f.relay(c)
	}
}

func (f *forwarder) relay(c net.Conn) {
	up, err := net.Dial("tcp", f.target)
	if err != nil {
		c.Close()
		return
	}
	f.mu.Lock()
	f.conns = append(f.conns, up)
	f.mu.Unlock()
	go func() { f.copy(up, c); up.Close() }()
	f.copy(c, up)
	c.Close()
}

// copy forwards src to dst, holding each read while the forwarder is stuck.
func (f *forwarder) copy(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			f.mu.Lock()
			if f.stuck {
				f.held += n
			}
			for f.stuck {
				f.cond.Wait()
			}
			f.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// heldBytes is how many bytes arrived since stall.
func (f *forwarder) heldBytes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.held
}

// closeAll closes every connection so far.
func (f *forwarder) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.Close()
	}
	f.conns = nil
}

// stall holds every byte from now on, in both directions: a command sent
// meanwhile gets no answer.
func (f *forwarder) stall() {
	f.mu.Lock()
	f.stuck, f.held = true, 0
	f.mu.Unlock()
}

// unstall drops the held connections (their commands fail at once) and
// forwards again.
func (f *forwarder) unstall() {
	f.closeAll()
	f.mu.Lock()
	f.stuck = false
	f.cond.Broadcast()
	f.mu.Unlock()
}

// cut refuses every connection from now on.
func (f *forwarder) cut() {
	f.ln.Close()
	f.closeAll()
}

// keyState returns the value and the remaining lease of key ("" and 0 when
// the key is gone).
func keyState(t testing.TB, c *redis.Client, key string) (string, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := c.Get(ctx, key).Result()
	if err == redis.Nil {
		return "", 0
	}
	if err != nil {
		t.Fatal(err)
	}
	ttl, err := c.PTTL(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	return v, ttl
}
