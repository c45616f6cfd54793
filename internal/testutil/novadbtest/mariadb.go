package novadbtest

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/go-sql-driver/mysql"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

// StartMariaDB creates a MariaDB data directory in a new temporary
// directory (mariadb-install-db) and starts mariadbd on a free loopback
// port with its socket there. A user nova (Password) connects over TCP.
func StartMariaDB() (*Server, error) {
	install, err := testutil.LookBinary("mariadb-install-db", "/usr/bin")
	if err != nil {
		return nil, err
	}
	bin, err := testutil.LookBinary("mariadbd", "/usr/sbin")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "novadb-mariadb-")
	if err != nil {
		return nil, err
	}
	s := newServer(MariaDB, dir, bin, syscall.SIGTERM)
	if s.Port, err = testutil.PickPort(); err != nil {
		return nil, s.cleanup(err)
	}
	data, sock := filepath.Join(dir, "data"), filepath.Join(dir, "mysqld.sock")
	asRoot := []string{}
	if os.Geteuid() == 0 {
		asRoot = []string{"--user=root"} // mariadbd refuses root otherwise
	}
	err = run(dir, nil, install, append([]string{"--no-defaults", "--datadir=" + data,
		"--auth-root-authentication-method=normal", "--skip-test-db"}, asRoot...)...)
	if err != nil {
		return nil, s.cleanup(err)
	}
	s.proc.Args = append([]string{"--no-defaults", "--datadir=" + data, "--socket=" + sock,
		"--port=" + strconv.Itoa(s.Port), "--bind-address=127.0.0.1", "--skip-name-resolve",
		"--pid-file=" + filepath.Join(dir, "mysqld.pid"), "--tmpdir=" + dir,
		"--innodb-buffer-pool-size=16M", "--innodb-flush-log-at-trx-commit=0",
		"--max-connections=500", "--performance-schema=OFF"}, asRoot...)
	s.admin = func(db string) (execer, error) {
		cfg := mysql.NewConfig()
		cfg.User, cfg.Net, cfg.Addr, cfg.DBName = "root", "unix", sock, db
		conn, err := mysql.NewConnector(cfg)
		if err != nil {
			return nil, err
		}
		return sqlExecer{sql.OpenDB(conn)}, nil
	}
	if err := s.Start(); err != nil {
		return nil, s.cleanup(err)
	}
	err = s.Exec("", "CREATE USER 'nova'@'127.0.0.1' IDENTIFIED BY '"+Password+"'")
	if err != nil {
		return nil, s.cleanup(err)
	}
	return s, nil
}

// cleanup removes what a failed start left and returns err.
func (s *Server) cleanup(err error) error {
	_ = s.Close()
	return err
}

// sqlExecer is an admin connection through database/sql.
type sqlExecer struct{ db *sql.DB }

func (e sqlExecer) exec(ctx context.Context, query string, args ...any) error {
	_, err := e.db.ExecContext(ctx, query, args...)
	return err
}

func (e sqlExecer) close() { _ = e.db.Close() }
