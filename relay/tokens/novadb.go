package tokens

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"
)

// NovaDBConfig configures a NovaDB store (`--token-store novadb:DSN`).
type NovaDBConfig struct {
	DSN          NovaDSN       // from ParseNovaDSN
	QueryTimeout time.Duration // one lookup, connecting included; 0 means DefaultNovaQueryTimeout
	MaxOpenConns int           // connections to the database; 0 means DefaultNovaMaxOpenConns
	LogInterval  time.Duration // at most one outage line per interval; 0 means DefaultNovaLogInterval
	Logger       *slog.Logger  // nil means slog.Default()
	Now          func() time.Time
}

// Defaults for NovaDBConfig's zero fields, and the pool's fixed bounds.
const (
	DefaultNovaQueryTimeout = 2 * time.Second
	DefaultNovaMaxOpenConns = 16
	DefaultNovaLogInterval  = 30 * time.Second
	// novaMaxIdleConns connections stay open between bursts.
	novaMaxIdleConns = 4
	// novaConnMaxLifetime stays under MySQL's and proxies' idle cut-offs
	// (wait_timeout, haproxy's timeouts) so a pooled connection is rarely dead.
	novaConnMaxLifetime = 5 * time.Minute
	novaConnMaxIdleTime = time.Minute
)

// NovaDB validates tokens against Nova's cell database, as
// nova-novncproxy does: the row of console_auth_tokens whose token_hash is
// the token's lowercase hex SHA-256, valid while expires (Unix seconds) is
// later than now.
//
// Nova's proxy then asks the compute service, over the message bus, whether
// the instance still has that console port. NovaDB has no message bus; it
// checks instead, in the same query, that the instance exists in the cell's
// instances table and is not (soft-)deleted (deleted = 0). A token whose
// instance was deleted or archived is refused like an unknown one. What this
// does not catch is a console port that moved while the instance lives (a
// migration before Nova cleaned the tokens up): the dial then fails (502).
//
// Lookups block on the database; they run on the proxy's worker pool. An
// outage answers ErrUnavailable (HTTP 503), logs one line when it starts, at
// most one per LogInterval while it lasts and one when it ends, and recovers
// without a restart: the pool opens fresh connections.
type NovaDB struct {
	cfg    NovaDBConfig
	q      querier
	dia    dialect
	legacy atomic.Bool // the table predates tls_port (Nova < 2024.2)
	health outage
}

// OpenNovaDB opens the connection pool. It does not need the database to
// be up: if it is not, start-up goes on, a warning is logged, and lookups
// answer ErrUnavailable until it is.
func OpenNovaDB(cfg NovaDBConfig) (*NovaDB, error) {
	if cfg.QueryTimeout <= 0 {
		cfg.QueryTimeout = DefaultNovaQueryTimeout
	}
	if cfg.MaxOpenConns <= 0 {
		cfg.MaxOpenConns = DefaultNovaMaxOpenConns
	}
	if cfg.LogInterval <= 0 {
		cfg.LogInterval = DefaultNovaLogInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	q, d, err := cfg.DSN.open(cfg.QueryTimeout, cfg.MaxOpenConns, cfg.Logger)
	if err != nil {
		return nil, err
	}
	s := &NovaDB{cfg: cfg, q: q, dia: d}
	s.health = outage{log: cfg.Logger, interval: cfg.LogInterval, now: cfg.Now,
		name: "nova database", attr: "database", what: cfg.DSN.String()}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.QueryTimeout)
	defer cancel()
	if err := q.ping(ctx); err != nil {
		s.health.fail(describe(err, ""))
	} else {
		cfg.Logger.Info("nova database: connected", "database", cfg.DSN.String())
	}
	return s, nil
}

// Lookup returns the record of h: ErrNotFound when no row has that hash or
// its instance is deleted or missing (ErrInstanceGone), ErrExpired past
// expires, ErrUnavailable when the database does not answer within
// QueryTimeout.
func (s *NovaDB) Lookup(ctx context.Context, h Hash) (Record, error) {
	hash := h.Hex()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.QueryTimeout)
	defer cancel()
	legacy := s.legacy.Load()
	rec, live, err := s.query(ctx, hash, legacy)
	if err != nil && !legacy && isUndefinedColumn(err) {
		if !s.legacy.Swap(true) {
			s.cfg.Logger.Info("nova database: console_auth_tokens has no tls_port column (Nova before 2024.2); reading without it")
		}
		rec, live, err = s.query(ctx, hash, true)
	}
	switch {
	case errors.Is(err, sql.ErrNoRows):
		s.health.ok()
		return Record{}, ErrNotFound
	case err != nil:
		reason := describe(err, hash)
		s.health.fail(reason)
		return Record{}, fmt.Errorf("%w: %s", ErrUnavailable, reason)
	}
	s.health.ok()
	if !live {
		return Record{}, ErrInstanceGone
	}
	if _, err := validate(&rec); err != nil {
		s.cfg.Logger.Warn("nova database: a console_auth_tokens row is invalid; refused", "reason", err.Error())
		return Record{}, fmt.Errorf("%w: invalid row", ErrNotFound)
	}
	return checkRecord(rec, true, s.cfg.Now())
}

var _ Store = (*NovaDB)(nil)

// ErrInstanceGone is Lookup's answer for a token whose instance is deleted or
// missing from the instances table; it wraps ErrNotFound (HTTP 403).
var ErrInstanceGone = fmt.Errorf("%w: instance deleted or missing", ErrNotFound)

// query runs the lookup once, without tls_port if legacy; live reports the
// instance exists undeleted.
func (s *NovaDB) query(ctx context.Context, hash string, legacy bool) (Record, bool, error) {
	q := s.dia.query
	if legacy {
		q = s.dia.legacyQuery
	}
	var (
		rec                  = Record{TokenHash: hash}
		tlsPort              sql.NullInt64
		path, base, liveUUID sql.NullString
	)
	dest := []any{&rec.ConsoleType, &rec.Host, &rec.Port, &path, &rec.InstanceUUID, &base, &rec.Expires, &liveUUID}
	if !legacy {
		dest = append(dest, &tlsPort)
	}
	if err := s.q.queryRow(ctx, q, hash, dest...); err != nil {
		return Record{}, false, err
	}
	if tlsPort.Valid {
		p := int(tlsPort.Int64)
		rec.TLSPort = &p
	}
	if path.Valid {
		rec.InternalAccessPath = &path.String
	}
	rec.AccessURLBase = base.String
	return rec, liveUUID.Valid, nil
}

// Reload is a no-op: every lookup reads the database.
func (s *NovaDB) Reload() error { return nil }

// Close closes the pool; lookups after it return ErrUnavailable.
func (s *NovaDB) Close() error { return s.q.close() }

// describe is an error's text for the log, with the hash (a secret) cut out
// should a driver ever quote the query's argument.
func describe(err error, hash string) string {
	msg := err.Error()
	if hash != "" {
		msg = strings.ReplaceAll(msg, hash, "<token_hash>")
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "no answer within the query timeout: " + msg
	case isUndefinedTable(err):
		return "a Nova table is missing (is this the cell database, not the API database?): " + msg
	}
	return msg
}
