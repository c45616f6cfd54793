package novadbtest

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
)

// pgBinDirs is where Debian installs PostgreSQL's server binaries.
const pgBinDirs = "/usr/lib/postgresql/*/bin"

// StartPostgres creates a cluster (initdb) in a new temporary directory and
// starts postgres on a free loopback port with its socket there. PostgreSQL
// refuses to run as root: as root, the server runs as the postgres user
// (Debian's package creates it), else nobody. A role nova (Password,
// SCRAM) connects over TCP.
func StartPostgres() (*Server, error) {
	initdb, err := testutil.LookBinary("initdb", pgBinDirs)
	if err != nil {
		return nil, err
	}
	bin, err := testutil.LookBinary("postgres", pgBinDirs)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(pgTempRoot(), "novadb-pg-")
	if err != nil {
		return nil, err
	}
	s := newServer(PostgreSQL, dir, bin, syscall.SIGINT)
	if s.Port, err = testutil.PickPort(); err != nil {
		return nil, s.cleanup(err)
	}
	data, sock := filepath.Join(dir, "data"), filepath.Join(dir, "sock")
	if err := os.Mkdir(sock, 0o700); err != nil {
		return nil, s.cleanup(err)
	}
	if s.proc.Cred, err = unprivileged(dir, sock); err != nil {
		return nil, s.cleanup(err)
	}
	err = run(dir, s.proc.Cred, initdb, "-D", data, "-U", "postgres", "--auth-local=trust",
		"--auth-host=scram-sha-256", "--no-sync", "-E", "UTF8", "--locale=C")
	if err != nil {
		return nil, s.cleanup(err)
	}
	s.proc.Args = []string{"-D", data, "-k", sock, "-p", strconv.Itoa(s.Port),
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
		"-c", "full_page_writes=off", "-c", "max_connections=500", "-c", "shared_buffers=16MB"}
	s.admin = func(db string) (execer, error) {
		if db == "" {
			db = "postgres"
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%d user=postgres dbname=%s sslmode=disable", sock, s.Port, db))
		if err != nil {
			return nil, err
		}
		return pgExecer{c}, nil
	}
	if err := s.Start(); err != nil {
		return nil, s.cleanup(err)
	}
	if err := s.Exec("", "CREATE ROLE nova LOGIN PASSWORD '"+Password+"'"); err != nil {
		return nil, s.cleanup(err)
	}
	return s, nil
}

// unprivileged returns the credential to run PostgreSQL with when we are
// root (nil otherwise), after handing it the directories.
func unprivileged(dirs ...string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		if u, err = user.Lookup("nobody"); err != nil {
			return nil, fmt.Errorf("novadbtest: no unprivileged user to run postgres as: %w", err)
		}
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	for _, d := range dirs {
		if err := os.Chown(d, int(uid), int(gid)); err != nil {
			return nil, err
		}
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// pgExecer is an admin connection through pgx.
type pgExecer struct{ c *pgx.Conn }

func (e pgExecer) exec(ctx context.Context, query string, args ...any) error {
	_, err := e.c.Exec(ctx, query, args...)
	return err
}

func (e pgExecer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = e.c.Close(ctx)
}

// pgTempRoot is where the cluster's directory goes: /tmp when we are root,
// so that the unprivileged server can reach it whatever TMPDIR says.
func pgTempRoot() string {
	if os.Geteuid() == 0 {
		return "/tmp"
	}
	return ""
}
