package tokens

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
)

// The database drivers a NovaDSN names.
const (
	DriverMySQL    = "mysql" // MariaDB and MySQL, github.com/go-sql-driver/mysql
	DriverPostgres = "pgx"   // PostgreSQL, github.com/jackc/pgx/v5
)

// NovaDSN is a parsed Nova database connection string. Its String form
// never shows the password.
type NovaDSN struct {
	Driver string // DriverMySQL or DriverPostgres
	my     *mysql.Config
	pg     *pgx.ConnConfig
	tls    mysqlTLS
}

// mysqlTLS is what pymysql's ssl_* URL parameters ask for; files are read
// when the store opens.
type mysqlTLS struct {
	ca, cert, key string
	noVerify      bool
}

// errDSN is the error of an unparsable connection string. Its text never
// holds the string: it may carry a password.
var errDSN = errors.New("novadb: the connection string does not parse (not shown: it may hold a password)")

// ParseNovaDSN parses what `--token-store novadb:DSN` and nova.conf's
// [database] connection hold:
//
//   - SQLAlchemy URLs as oslo.db reads them: mysql://, mysql+pymysql://,
//     mysql+mysqldb://, mariadb+pymysql://, … and postgresql://,
//     postgresql+psycopg2://, postgres://, with percent-encoded user and
//     password; for MySQL the query parameters charset, unix_socket,
//     connect_timeout, read_timeout, write_timeout, ssl_ca, ssl_cert,
//     ssl_key and ssl_verify_cert are understood and plugin (oslo.db's
//     dbcounter) ignored; another one is an error naming it. PostgreSQL
//     parameters are libpq's, as psycopg2 passes them on.
//   - the drivers' own forms: go-sql-driver's user:pass@tcp(host:3306)/nova
//     and libpq's "host=… dbname=…" keyword list.
//
// Errors never include the string's text.
func ParseNovaDSN(s string) (NovaDSN, error) {
	d, err := parseDSN(strings.TrimSpace(s))
	if err == nil && d.database() == "" {
		return NovaDSN{}, errors.New("novadb: the connection string names no database (Nova's cell database, e.g. …/nova)")
	}
	return d, err
}

// parseDSN is ParseNovaDSN but for the database name check.
func parseDSN(s string) (NovaDSN, error) {
	scheme, rest, isURL := strings.Cut(s, "://")
	if !isURL {
		return parseNativeDSN(s)
	}
	dialect, _, _ := strings.Cut(strings.ToLower(scheme), "+")
	switch dialect {
	case "mysql", "mariadb":
		return parseMySQLURL("mysql://" + rest)
	case "postgresql", "postgres":
		return parsePostgresURL("postgresql://" + rest)
	}
	return NovaDSN{}, fmt.Errorf("novadb: unsupported database %s: want mysql:// or postgresql://", quoteName(dialect))
}

// parseNativeDSN reads a driver-native DSN: libpq keywords or go-sql-driver's.
func parseNativeDSN(s string) (NovaDSN, error) {
	if first, _, _ := strings.Cut(s, "="); first != "" && isKeyword(first) {
		return parsePostgres(s)
	}
	cfg, err := mysql.ParseDSN(s)
	if err != nil || s == "" {
		return NovaDSN{}, errDSN
	}
	return NovaDSN{Driver: DriverMySQL, my: cfg}, nil
}

// isKeyword reports whether s looks like a libpq keyword (host, dbname, …),
// or a dialect or pymysql parameter name: lower-case letters and '_'.
func isKeyword(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && c != '_' {
			return false
		}
	}
	return true
}

func parsePostgresURL(s string) (NovaDSN, error) {
	u, err := url.Parse(s)
	if err != nil {
		return NovaDSN{}, errDSN
	}
	q := u.Query()
	q.Del("plugin") // oslo.db's dbcounter: not a libpq parameter
	u.RawQuery = q.Encode()
	return parsePostgres(u.String())
}

func parsePostgres(s string) (NovaDSN, error) {
	cfg, err := pgx.ParseConfig(s)
	if err != nil {
		return NovaDSN{}, errDSN
	}
	return NovaDSN{Driver: DriverPostgres, pg: cfg}, nil
}

// parseMySQLURL turns an SQLAlchemy MySQL URL into go-sql-driver's Config.
func parseMySQLURL(s string) (NovaDSN, error) {
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" {
		return NovaDSN{}, errDSN
	}
	cfg := mysql.NewConfig()
	cfg.Net, cfg.Addr = "tcp", "127.0.0.1:3306"
	if u.Host != "" {
		cfg.Addr = hostPort(u.Host, "3306")
	}
	if u.User != nil {
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
	}
	cfg.DBName = strings.TrimPrefix(u.Path, "/")
	if strings.Contains(cfg.DBName, "/") {
		return NovaDSN{}, errors.New("novadb: the database name must not contain '/'")
	}
	d := NovaDSN{Driver: DriverMySQL, my: cfg}
	for name, vals := range u.Query() {
		if err := d.mysqlParam(name, vals[len(vals)-1]); err != nil {
			return NovaDSN{}, err
		}
	}
	return d, nil
}

// hostPort adds the default port to host unless it has one.
func hostPort(host, port string) string {
	if h, p, err := net.SplitHostPort(host); err == nil {
		return net.JoinHostPort(h, p)
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), port)
}

// mysqlParam applies one SQLAlchemy/pymysql URL parameter.
func (d *NovaDSN) mysqlParam(name, v string) error {
	cfg := d.my
	var err error
	switch name {
	case "charset":
		err = cfg.Apply(mysql.Charset(v, ""))
	case "unix_socket":
		cfg.Net, cfg.Addr = "unix", v
	case "connect_timeout":
		cfg.Timeout, err = seconds(v)
	case "read_timeout":
		cfg.ReadTimeout, err = seconds(v)
	case "write_timeout":
		cfg.WriteTimeout, err = seconds(v)
	case "ssl_ca":
		d.tls.ca = v
	case "ssl_cert":
		d.tls.cert = v
	case "ssl_key":
		d.tls.key = v
	case "ssl_verify_cert":
		var verify bool
		verify, err = strconv.ParseBool(v)
		d.tls.noVerify = !verify
	case "plugin":
		// oslo.db's dbcounter plugin: meaningless here.
	default:
		return fmt.Errorf("novadb: unsupported MySQL URL parameter %s", quoteName(name))
	}
	if err != nil {
		return fmt.Errorf("novadb: MySQL URL parameter %q: invalid value", name)
	}
	return nil
}

// maxShownName bounds the names an error quotes: pymysql's longest
// parameter, ssl_verify_identity, has 19 bytes.
const maxShownName = 32

// quoteName quotes a dialect or parameter name for an error when it looks
// like one (isKeyword's lower-case letters and '_', at most maxShownName
// bytes) and says "(name not shown)" otherwise. A name of any other shape
// comes from a malformed string whose password may have run into the query
// (an unescaped '?' or '&' in it: "nova:pw?x:secret@db"), and an error
// never shows a password, not even part of one.
func quoteName(s string) string {
	if s == "" || len(s) > maxShownName || !isKeyword(s) {
		return "(name not shown)"
	}
	return strconv.Quote(s)
}

// seconds parses pymysql's timeouts: a number of seconds.
func seconds(v string) (time.Duration, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 || f > 86400 {
		return 0, errors.New("invalid")
	}
	return time.Duration(f * float64(time.Second)), nil
}

// database returns the database name d connects to.
func (d NovaDSN) database() string {
	switch {
	case d.my != nil:
		return d.my.DBName
	case d.pg != nil:
		return d.pg.Database
	}
	return ""
}

// String returns the DSN without its password, for logs:
// driver://user@address/database.
func (d NovaDSN) String() string {
	switch {
	case d.my != nil:
		return fmt.Sprintf("mysql://%s@%s(%s)/%s", d.my.User, d.my.Net, d.my.Addr, d.my.DBName)
	case d.pg != nil:
		return fmt.Sprintf("postgresql://%s@%s/%s", d.pg.User, net.JoinHostPort(d.pg.Host, strconv.Itoa(int(d.pg.Port))), d.pg.Database)
	}
	return "novadb:(none)"
}
