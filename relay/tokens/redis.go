package tokens

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Redis key prefixes (docs/fleet.md). Each is followed by the lowercase hex
// SHA-256 of the token; the key itself is a secret like the hash: never
// logged.
const (
	redisTokenPrefix = "consoleproxy:token:" // the record, one JSON object (a token-file line)
	redisLivePrefix  = "consoleproxy:live:"  // exclusive: the owner id of the live session's lease
	redisUsedPrefix  = "consoleproxy:used:"  // single-use: "1" until the token expires
	// revoked: "1" for RevokedFor after a revocation (redisguard_end.go)
	redisRevokedPrefix = "consoleproxy:revoked:"
	// The pub/sub channel of revocations and takeovers, followed by the
	// database number (PUBLISH ignores the database).
	redisEndChannel = "consoleproxy:end:"
)

// Defaults for RedisConfig's zero fields.
const (
	DefaultRedisTimeout     = 2 * time.Second // one command, a connect included
	DefaultRedisPoolSize    = 16              // connections per client
	DefaultRedisLogInterval = 30 * time.Second
)

// RedisURL is a parsed `redis://[user:pass@]host:port[/db]` or `rediss://…`
// (TLS), or a Sentinel (failover) URL in go-redis's form:
// `redis://[sentinel-user:sentinel-pass@]sentinel:port[/db]?master_name=NAME&addr=sentinel2:port&password=…`
// (the query's master_name makes it one; the host and every addr are
// Sentinels; the primary's own credentials are the username and password
// query options). Its String is safe to log: the password is redacted and
// the query left out.
type RedisURL struct {
	opts     redis.Options          // a template: never handed to a client itself
	failover *redis.FailoverOptions // a Sentinel URL: the template instead of opts
	redacted string
}

// ParseRedisURL parses spec with go-redis's URL rules (query options such as
// dial_timeout included; with master_name, its failover URL rules). Errors
// never quote spec: it may hold a password.
func ParseRedisURL(spec string) (RedisURL, error) {
	u, err := url.Parse(spec)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
		return RedisURL{}, errors.New("redis URL must be redis://[user:pass@]host:port[/db] or rediss://…")
	}
	if u.Query().Has("master_name") {
		f, err := redis.ParseFailoverURL(spec)
		if err != nil || f.MasterName == "" {
			return RedisURL{}, errors.New("redis Sentinel URL: bad Sentinel address, database number or query option")
		}
		if f.TLSConfig != nil {
			f.TLSConfig.MinVersion = tls.VersionTLS12
		}
		return RedisURL{failover: f, redacted: redactURL(u)}, nil
	}
	o, err := redis.ParseURL(spec)
	if err != nil {
		return RedisURL{}, errors.New("redis URL: bad host, port, database number or query option")
	}
	if o.TLSConfig != nil {
		o.TLSConfig.MinVersion = tls.VersionTLS12
	}
	return RedisURL{opts: *o, redacted: redactURL(u)}, nil
}

// Sentinel reports whether u names a primary through Sentinels.
func (u RedisURL) Sentinel() bool { return u.failover != nil }

// db is u's database number.
func (u RedisURL) db() int {
	if u.failover != nil {
		return u.failover.DB
	}
	return u.opts.DB
}

// redactURL is u for the logs: the password replaced by "xxxxx", the query
// (go-redis options, which may carry credentials) and fragment left out.
func redactURL(u *url.URL) string {
	r := *u
	r.RawQuery, r.ForceQuery, r.Fragment, r.RawFragment = "", false, "", ""
	if u.RawQuery != "" {
		return r.Redacted() + "?…"
	}
	return r.Redacted()
}

// String is the URL with its password replaced by "xxxxx" and any query
// left out.
func (u RedisURL) String() string { return u.redacted }

// client opens a client on u: at most pool connections, every command and
// connect bounded by timeout, retries as given (-1: none). go-redis
// connects lazily, so this never fails because Redis is down. With a
// Sentinel URL it is a failover client: it asks the Sentinels for the
// primary and follows a failover.
func (u RedisURL) client(timeout time.Duration, pool, retries int) *redis.Client {
	if u.failover != nil {
		o := *u.failover
		o.SentinelAddrs = append([]string(nil), o.SentinelAddrs...)
		if o.TLSConfig != nil {
			o.TLSConfig = o.TLSConfig.Clone()
		}
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolTimeout = timeout, timeout, timeout, timeout
		o.ContextTimeoutEnabled = true
		o.PoolSize, o.MaxActiveConns = pool, pool
		o.MaxRetries, o.DialerRetries = retries, 1
		o.DisableIdentity = true
		return redis.NewFailoverClient(&o)
	}
	o := u.opts
	if o.TLSConfig != nil {
		o.TLSConfig = o.TLSConfig.Clone()
	}
	o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolTimeout = timeout, timeout, timeout, timeout
	o.ContextTimeoutEnabled = true
	o.PoolSize, o.MaxActiveConns = pool, pool
	o.MaxRetries, o.DialerRetries = retries, 1
	o.DisableIdentity = true // no CLIENT SETINFO: older servers answer it with an error
	o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return redis.NewClient(&o)
}

// RedisConfig configures a Redis token store (`--token-store redis://…`).
type RedisConfig struct {
	URL         RedisURL      // from ParseRedisURL
	Timeout     time.Duration // one lookup, connecting included; 0 means DefaultRedisTimeout
	PoolSize    int           // connections; 0 means DefaultRedisPoolSize
	LogInterval time.Duration // at most one outage line per interval; 0 means DefaultRedisLogInterval
	Logger      *slog.Logger  // nil means slog.Default()
	Now         func() time.Time
}

func (c RedisConfig) withDefaults() RedisConfig {
	if c.Timeout <= 0 {
		c.Timeout = DefaultRedisTimeout
	}
	if c.PoolSize <= 0 {
		c.PoolSize = DefaultRedisPoolSize
	}
	if c.LogInterval <= 0 {
		c.LogInterval = DefaultRedisLogInterval
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Redis serves records from Redis: the key consoleproxy:token:<hash> holds
// one JSON object in the token-file line format, validated by ParseRecord.
// Writers set the key's expiry; Lookup still checks expires.
//
// An outage answers ErrUnavailable (HTTP 503), logs one line when it starts,
// at most one per LogInterval while it lasts and one when it ends, and
// recovers without a restart: the pool dials afresh.
type Redis struct {
	cfg    RedisConfig
	rdb    *redis.Client
	health outage
}

var _ Store = (*Redis)(nil)

// OpenRedis opens the pool. Redis need not be up: start-up goes on with a
// warning and lookups answer ErrUnavailable until it is.
func OpenRedis(cfg RedisConfig) *Redis {
	cfg = cfg.withDefaults()
	s := &Redis{cfg: cfg, rdb: cfg.URL.client(cfg.Timeout, cfg.PoolSize, 1)}
	s.health = redisOutage("redis token store", cfg.URL, cfg.LogInterval, cfg.Logger, cfg.Now)
	pingRedis(s.rdb, cfg.Timeout, &s.health, "redis token store: connected", cfg.URL, cfg.Logger)
	return s
}

// redisOutage is the outage reporter of a Redis client on u.
func redisOutage(name string, u RedisURL, interval time.Duration, log *slog.Logger, now func() time.Time) outage {
	return outage{log: log, interval: interval, now: now, name: name, attr: "redis", what: u.String()}
}

// pingRedis checks rdb once at start-up: a failure starts an outage, a
// success logs msg.
func pingRedis(rdb *redis.Client, timeout time.Duration, o *outage, msg string, u RedisURL, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		o.fail(describe(err, ""))
		return
	}
	log.Info(msg, "redis", u.String())
}

// Lookup returns the record of h: ErrNotFound when the key is missing or
// its value is not a valid record for h, ErrExpired past expires,
// ErrUnavailable when Redis does not answer within Timeout.
func (s *Redis) Lookup(ctx context.Context, h Hash) (Record, error) {
	hash := h.Hex()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	val, err := s.rdb.Get(ctx, redisTokenPrefix+hash).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		s.health.ok()
		return Record{}, ErrNotFound
	case redis.HasErrorPrefix(err, "WRONGTYPE"):
		s.health.ok()
		return s.invalid(errNotJSON)
	case err != nil:
		reason := describe(err, hash)
		s.health.fail(reason)
		return Record{}, fmt.Errorf("%w: %s", ErrUnavailable, reason)
	}
	s.health.ok()
	rec, got, err := ParseRecord(val)
	switch {
	case err != nil:
		return s.invalid(err)
	case got != h:
		return s.invalid(errors.New("token_hash does not match the key"))
	}
	return checkRecord(rec, true, s.cfg.Now())
}

// invalid refuses a value that is not a valid record; the warning names the
// reason, never the value or the key.
func (s *Redis) invalid(reason error) (Record, error) {
	s.cfg.Logger.Warn("redis token store: a record is invalid; refused", "reason", reason.Error())
	return Record{}, fmt.Errorf("%w: invalid record", ErrNotFound)
}

// Reload is a no-op: every lookup reads Redis.
func (s *Redis) Reload() error { return nil }

// Close closes the pool; lookups after it return ErrUnavailable.
func (s *Redis) Close() error { return s.rdb.Close() }
