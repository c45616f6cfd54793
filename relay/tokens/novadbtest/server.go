// Package novadbtest starts real database servers for tests: MariaDB and
// PostgreSQL on loopback, each in its own directory, holding Nova cell
// databases with Nova's console_auth_tokens and instances tables. It is a
// test helper (like net/http/httptest); nothing in the proxy imports it.
package novadbtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
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

	bin     string
	args    []string
	cred    *syscall.Credential // nil: run as ourselves
	stopSig syscall.Signal
	logPath string
	admin   func(db string) (execer, error) // a superuser connection over the Unix socket

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
}

// execer runs statements on an admin connection.
type execer interface {
	exec(ctx context.Context, query string, args ...any) error
	close()
}

// Start starts the server process and waits until it accepts connections.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("novadbtest: already running")
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o666)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(s.bin, s.args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = s.Dir, logf, logf
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C", "LC_ALL=C"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: s.cred}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("novadbtest: start %s: %w", s.Kind, err)
	}
	s.cmd, s.exited = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(s.exited)
	return s.waitReady()
}

// waitReady polls an admin connection until it works, the process exits or
// the start-up timeout passes. Must hold s.mu.
func (s *Server) waitReady() error {
	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := s.admin("")
		if err == nil {
			err = c.exec(ctx, "SELECT 1")
			c.close()
		}
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-s.exited:
			s.cmd = nil
			return fmt.Errorf("novadbtest: %s exited during start-up: %v\n%s", s.Kind, err, s.logTail())
		default:
		}
		if time.Now().After(deadline) {
			s.killLocked()
			return fmt.Errorf("novadbtest: %s not ready after %s: %v\n%s", s.Kind, startTimeout, err, s.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops the server cleanly (its data stays) and waits for it.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(s.stopSig)
	select {
	case <-s.exited:
	case <-time.After(startTimeout):
		s.killLocked()
		return fmt.Errorf("novadbtest: %s did not stop in %s", s.Kind, startTimeout)
	}
	s.cmd = nil
	return nil
}

// killLocked kills the process and waits. Must hold s.mu.
func (s *Server) killLocked() {
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// Close stops the server and removes its directory.
func (s *Server) Close() error {
	err := s.Stop()
	if rmErr := os.RemoveAll(s.Dir); err == nil {
		err = rmErr
	}
	return err
}

// logTail returns the end of the server's log, for start-up errors.
func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(bytes.TrimSpace(b))
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

// freePort returns a loopback port nothing listens on right now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// lookBin finds a server binary on PATH or in the given directories.
func lookBin(name string, dirs ...string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range dirs {
		matches, _ := filepath.Glob(filepath.Join(d, name))
		if len(matches) > 0 {
			return matches[len(matches)-1], nil
		}
	}
	return "", fmt.Errorf("novadbtest: %s not found (scripts/deps.sh installs it)", name)
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
