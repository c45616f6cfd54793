package tokens

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// querier runs the lookup query on a bounded set of connections.
type querier interface {
	// queryRow runs q with arg and scans its one row into dest; sql.ErrNoRows
	// (possibly wrapped) when there is none.
	queryRow(ctx context.Context, q, arg string, dest ...any) error
	ping(ctx context.Context) error
	close() error
}

// pgPool is a small PostgreSQL connection pool on pgx's own connections (no
// database/sql: pgx's stdlib adapter pulls in pgxpool's module). At most
// maxOpen connections exist; up to maxIdle wait between lookups.
type pgPool struct {
	cfg   *pgx.ConnConfig
	slots chan struct{} // a token per open connection
	idle  chan *pgConn  // idle connections, newest last

	mu     sync.Mutex // guards closed against put
	closed bool
}

type pgConn struct {
	c          *pgx.Conn
	born, used time.Time
}

var errPoolClosed = errors.New("novadb: store closed")

func newPGPool(cfg *pgx.ConnConfig, maxOpen, maxIdle int) *pgPool {
	return &pgPool{cfg: cfg, slots: make(chan struct{}, maxOpen), idle: make(chan *pgConn, maxIdle)}
}

func (p *pgPool) queryRow(ctx context.Context, q, arg string, dest ...any) error {
	return p.with(ctx, func(c *pgx.Conn) error { return c.QueryRow(ctx, q, arg).Scan(dest...) })
}

func (p *pgPool) ping(ctx context.Context) error {
	return p.with(ctx, func(c *pgx.Conn) error { return c.Ping(ctx) })
}

// with runs fn on a connection. A pooled connection that fails for a reason
// other than the server's answer (it died while idle: a database restart)
// is dropped and fn retried once on a fresh one; a lookup is read-only.
func (p *pgPool) with(ctx context.Context, fn func(*pgx.Conn) error) error {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-p.slots }()
	for attempt := 0; ; attempt++ {
		c, pooled, err := p.get(ctx)
		if err != nil {
			return err
		}
		err = fn(c.c)
		broken := isConnError(err) || c.c.IsClosed()
		p.put(c, broken)
		if !(broken && pooled && attempt == 0 && ctx.Err() == nil) {
			return err
		}
	}
}

// get returns an idle connection still within its lifetime, or a new one.
func (p *pgPool) get(ctx context.Context) (*pgConn, bool, error) {
	now := time.Now()
	for {
		select {
		case c := <-p.idle:
			if now.Sub(c.born) < novaConnMaxLifetime && now.Sub(c.used) < novaConnMaxIdleTime {
				return c, true, nil
			}
			closeConn(c)
			continue
		default:
		}
		if p.isClosed() {
			return nil, false, errPoolClosed
		}
		c, err := pgx.ConnectConfig(ctx, p.cfg)
		if err != nil {
			return nil, false, err
		}
		return &pgConn{c: c, born: now, used: now}, false, nil
	}
}

// put keeps c for the next lookup unless it is broken, the pool is full or
// closed.
func (p *pgPool) put(c *pgConn, broken bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if broken || p.closed {
		closeConn(c)
		return
	}
	c.used = time.Now()
	select {
	case p.idle <- c:
	default:
		closeConn(c)
	}
}

func (p *pgPool) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// close closes the idle connections; busy ones are closed when put back.
func (p *pgPool) close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	for {
		select {
		case c := <-p.idle:
			closeConn(c)
		default:
			return nil
		}
	}
}

// closeConn closes c, waiting at most a second for the goodbye message.
func closeConn(c *pgConn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = c.c.Close(ctx)
}

// isConnError reports an error that is not the server's answer to the
// query: the connection is no longer usable.
func isConnError(err error) bool {
	var pe *pgconn.PgError
	return err != nil && !errors.Is(err, pgx.ErrNoRows) && !errors.As(err, &pe)
}
