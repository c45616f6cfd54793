package tokens

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// dialect holds a driver's two forms of the lookup query.
type dialect struct {
	query       string // with tls_port (Nova 2024.2 and later)
	legacyQuery string // without it
}

// lookupQuery is Nova's console_auth_token_get_valid (the row by token_hash;
// expires is compared in Go, to tell expired from unknown) joined with the
// instance check that stands in for the compute-side port check. instances
// is soft-deleted: deleted = 0 is a live row, deleted = id a deleted one.
// The columns come in NovaDB.query's order; tls_port last.
func lookupQuery(placeholder string, withTLSPort bool) string {
	cols := "t.console_type, t.host, t.port, t.internal_access_path, t.instance_uuid, " +
		"t.access_url_base, t.expires, i.uuid"
	if withTLSPort {
		cols += ", t.tls_port"
	}
	return "SELECT " + cols + " FROM console_auth_tokens t " +
		"LEFT JOIN instances i ON i.uuid = t.instance_uuid AND i.deleted = 0 " +
		"WHERE t.token_hash = " + placeholder
}

func newDialect(placeholder string) dialect {
	return dialect{query: lookupQuery(placeholder, true), legacyQuery: lookupQuery(placeholder, false)}
}

// open returns a pool of at most maxOpen connections to d. timeout bounds
// connecting; the drivers' own I/O deadlines are a backstop at twice that.
// Driver messages go to log at debug level.
func (d NovaDSN) open(timeout time.Duration, maxOpen int, log *slog.Logger) (querier, dialect, error) {
	switch {
	case d.my != nil:
		cfg := d.my.Clone()
		cfg.Timeout = cmp(cfg.Timeout, timeout)
		cfg.ReadTimeout = cmp(cfg.ReadTimeout, 2*timeout)
		cfg.WriteTimeout = cmp(cfg.WriteTimeout, 2*timeout)
		cfg.InterpolateParams = true // one round trip: the argument is a hex digest
		cfg.Logger = driverLog{log}
		if d.tls != (mysqlTLS{}) {
			tc, err := d.tls.config(cfg.Addr)
			if err != nil {
				return nil, dialect{}, err
			}
			cfg.TLS = tc
		}
		conn, err := mysql.NewConnector(cfg)
		if err != nil {
			return nil, dialect{}, fmt.Errorf("novadb: %w", err)
		}
		db := sql.OpenDB(conn)
		db.SetMaxOpenConns(maxOpen)
		db.SetMaxIdleConns(min(novaMaxIdleConns, maxOpen))
		db.SetConnMaxLifetime(novaConnMaxLifetime)
		db.SetConnMaxIdleTime(novaConnMaxIdleTime)
		return sqlQuerier{db}, newDialect("?"), nil
	case d.pg != nil:
		cfg := d.pg.Copy()
		cfg.ConnectTimeout = cmp(cfg.ConnectTimeout, timeout)
		pool, err := newPGPool(cfg, maxOpen)
		if err != nil {
			return nil, dialect{}, fmt.Errorf("novadb: %w", err)
		}
		return pool, newDialect("$1"), nil
	}
	return nil, dialect{}, errors.New("novadb: no connection string")
}

// sqlQuerier is database/sql's pool (MySQL): it retries a dead pooled
// connection by itself (driver.ErrBadConn).
type sqlQuerier struct{ db *sql.DB }

func (q sqlQuerier) queryRow(ctx context.Context, query, arg string, dest ...any) error {
	return q.db.QueryRowContext(ctx, query, arg).Scan(dest...)
}

func (q sqlQuerier) ping(ctx context.Context) error { return q.db.PingContext(ctx) }
func (q sqlQuerier) close() error                   { return q.db.Close() }

// cmp returns v, or def when v is zero.
func cmp(v, def time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return def
}

// config builds the TLS configuration pymysql's ssl_* parameters describe.
func (t mysqlTLS) config(addr string) (*tls.Config, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	tc := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.noVerify}
	if t.ca != "" {
		pem, err := os.ReadFile(t.ca)
		if err != nil {
			return nil, fmt.Errorf("novadb: ssl_ca: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("novadb: ssl_ca %s: no certificate", t.ca)
		}
	}
	if t.cert != "" || t.key != "" {
		key := t.key
		if key == "" {
			key = t.cert
		}
		pair, err := tls.LoadX509KeyPair(t.cert, key)
		if err != nil {
			return nil, fmt.Errorf("novadb: ssl_cert/ssl_key: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

// driverLog sends go-sql-driver's messages to slog at debug level.
type driverLog struct{ l *slog.Logger }

func (d driverLog) Print(v ...any) {
	d.l.Debug("nova database driver", "detail", strings.TrimSpace(fmt.Sprint(v...)))
}

// isUndefinedColumn reports an unknown-column error (MySQL 1054,
// PostgreSQL 42703).
func isUndefinedColumn(err error) bool {
	var me *mysql.MySQLError
	var pe *pgconn.PgError
	return errors.As(err, &me) && me.Number == 1054 || errors.As(err, &pe) && pe.Code == "42703"
}

// isUndefinedTable reports an unknown-table error (MySQL 1146,
// PostgreSQL 42P01).
func isUndefinedTable(err error) bool {
	var me *mysql.MySQLError
	var pe *pgconn.PgError
	return errors.As(err, &me) && me.Number == 1146 || errors.As(err, &pe) && pe.Code == "42P01"
}
