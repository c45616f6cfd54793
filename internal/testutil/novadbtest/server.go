// Package novadbtest starts real database servers for tests: MariaDB and
// PostgreSQL on loopback, each in its own directory, holding Nova cell
// databases with Nova's console_auth_tokens and instances tables. It is a
// test helper (like net/http/httptest); nothing in the proxy imports it.
package novadbtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/consoleproxy/consoleproxy/internal/testutil/proc"
)

// Kinds of server.
const (
	MariaDB    = "mariadb"
	PostgreSQL = "postgresql"
)

// Password is the password of the nova user that Cell.URL carries. It holds
// characters URLs must percent-encode.
const Password = "s3cr;t/p@ss:w%rd"

// startTimeout bounds a server's start-up and shutdown.
const startTimeout = 60 * time.Second

// Server is a database server process the test started. Stop and Start may
// be called in turn (an outage in the middle of a test); Close stops it for
// good and removes its directory.
type Server struct {
	Kind string // MariaDB or PostgreSQL
	Dir  string // everything lives here
	Port int    // on 127.0.0.1

	proc  proc.Proc
	admin func(db string) (execer, error) // a superuser connection over the Unix socket
}

// execer runs statements on an admin connection.
type execer interface {
	exec(ctx context.Context, query string, args ...any) error
	close()
}

// newServer returns a Server of kind in dir running bin, stopped with sig.
func newServer(kind, dir, bin string, sig syscall.Signal) *Server {
	s := &Server{Kind: kind, Dir: dir}
	s.proc = proc.Proc{Name: kind, Bin: bin, Dir: dir, LogPath: filepath.Join(dir, "server.log"),
		StopSig: sig, Ready: s.ready, Timeout: startTimeout}
	return s
}

// Start starts the server process and waits until it accepts connections.
func (s *Server) Start() error { return s.proc.Start() }

// ready runs SELECT 1 on an admin connection.
func (s *Server) ready() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := s.admin("")
	if err != nil {
		return err
	}
	defer c.close()
	return c.exec(ctx, "SELECT 1")
}

// Stop stops the server cleanly (its data stays) and waits for it.
func (s *Server) Stop() error { return s.proc.Stop() }

// Close stops the server and removes its directory.
func (s *Server) Close() error {
	err := s.Stop()
	if rmErr := os.RemoveAll(s.Dir); err == nil {
		err = rmErr
	}
	return err
}

// Exec runs statements as the superuser in database db ("" for the
// server's default), each on its own.
func (s *Server) Exec(db string, statements ...string) error {
	c, err := s.admin(db)
	if err != nil {
		return err
	}
	defer c.close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, st := range statements {
		if err := c.exec(ctx, st); err != nil {
			return fmt.Errorf("novadbtest: %s: %w", firstLine(st), err)
		}
	}
	return nil
}

func firstLine(s string) string {
	if i := bytes.IndexByte([]byte(s), '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// run runs a set-up command, returning its output on failure.
func run(dir string, cred *syscall.Credential, bin string, args ...string) error {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C", "LC_ALL=C"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("novadbtest: %s: %v\n%s", filepath.Base(bin), err, out)
	}
	return nil
}
