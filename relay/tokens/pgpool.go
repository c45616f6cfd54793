//go:build linux

package tokens

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// querier runs the lookup query on a bounded set of connections.
type querier interface {
	// queryRow runs q with arg and scans its one row into dest; sql.ErrNoRows
	// (possibly wrapped) when there is none.
	queryRow(ctx context.Context, q, arg string, dest ...any) error
	ping(ctx context.Context) error
	close() error
}

// pgPool is pgx's own pool (pgxpool) for PostgreSQL: at most maxOpen
// connections, each closed after novaConnMaxLifetime or
// novaConnMaxIdleTime idle; a connection idle for more than a second is
// pinged before use (pgxpool's default), which finds most that died while
// idle (a database restart).
type pgPool struct{ p *pgxpool.Pool }

// newPGPool makes the pool; it connects on the first lookup, not here.
func newPGPool(cfg *pgx.ConnConfig, maxOpen int) (*pgPool, error) {
	pc, err := pgxpool.ParseConfig("") // pgxpool's defaults; the connection is cfg
	if err != nil {
		return nil, err
	}
	pc.ConnConfig = cfg
	pc.MaxConns = int32(maxOpen)
	pc.MinConns = 0
	pc.MaxConnLifetime = novaConnMaxLifetime
	pc.MaxConnIdleTime = novaConnMaxIdleTime
	p, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, err
	}
	return &pgPool{p}, nil
}

func (p *pgPool) queryRow(ctx context.Context, q, arg string, dest ...any) error {
	return p.with(ctx, func(c *pgx.Conn) error { return c.QueryRow(ctx, q, arg).Scan(dest...) })
}

func (p *pgPool) ping(ctx context.Context) error {
	return p.with(ctx, func(c *pgx.Conn) error { return c.Ping(ctx) })
}

// with runs fn on a pooled connection. One that fails for a reason other
// than the server's answer (it died between the pool's ping and the query)
// is dropped by pgxpool on release, and fn retried once on another; a
// lookup is read-only.
func (p *pgPool) with(ctx context.Context, fn func(*pgx.Conn) error) error {
	for attempt := 0; ; attempt++ {
		c, err := p.p.Acquire(ctx)
		if err != nil {
			return err
		}
		err = fn(c.Conn())
		broken := isConnError(err) || c.Conn().IsClosed()
		if broken && !c.Conn().IsClosed() {
			closeCtx, cancel := context.WithTimeout(context.Background(), pgCloseWait)
			_ = c.Conn().Close(closeCtx) // so that Release drops it
			cancel()
		}
		c.Release()
		if !(broken && attempt == 0 && ctx.Err() == nil) {
			return err
		}
	}
}

// pgCloseWait bounds the goodbye message to a broken connection.
const pgCloseWait = time.Second

// close closes the pool; it waits for lookups in flight, which their
// timeout bounds.
func (p *pgPool) close() error {
	p.p.Close()
	return nil
}

// isConnError reports an error that is not the server's answer to the
// query: the connection is no longer usable.
func isConnError(err error) bool {
	var pe *pgconn.PgError
	return err != nil && !errors.Is(err, pgx.ErrNoRows) && !errors.As(err, &pe)
}
