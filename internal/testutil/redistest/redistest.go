// Package redistest starts a real redis-server for tests: on a free
// loopback port, in its own temporary directory, without persistence, and
// killed by its PID (never a system Redis). It is a test helper, like
// net/http/httptest; nothing in the proxy imports it.
package redistest

import (
	"bufio"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/internal/testutil/proc"
)

// startTimeout bounds a start-up.
const startTimeout = 20 * time.Second

// Server is a redis-server process the test started. Stop and Start may be
// called in turn (an outage in the middle of a test; the port stays);
// Close stops it for good and removes its directory.
type Server struct {
	Port     int
	Password string // "" for none (requirepass)
	Dir      string

	proc proc.Proc
}

// Start starts redis-server with password ("" for none) on a free port.
func Start(password string) (*Server, error) { return start(password) }

// StartReplica starts a redis-server replicating primary (with its
// password), on a free port.
func StartReplica(primary *Server) (*Server, error) {
	extra := []string{"--replicaof", "127.0.0.1", strconv.Itoa(primary.Port)}
	if primary.Password != "" {
		extra = append(extra, "--masterauth", primary.Password)
	}
	return start(primary.Password, extra...)
}

func start(password string, extra ...string) (*Server, error) {
	bin, err := testutil.LookBinary("redis-server", "/usr/sbin", "/usr/bin")
	if err != nil {
		return nil, err // wraps testutil.ErrNotInstalled: testutil.Need skips
	}
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		return nil, err
	}
	s := &Server{Password: password, Dir: dir}
	if s.Port, err = testutil.PickPort(); err == nil {
		args := []string{"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", dir, "--daemonize", "no"}
		if password != "" {
			args = append(args, "--requirepass", password)
		}
		args = append(args, extra...)
		s.proc = proc.Proc{Name: "redis-server", Bin: bin, Args: args, Dir: dir, LogPath: filepath.Join(dir, "redis.log"),
			Ready: s.ping, Timeout: startTimeout}
		err = s.Start()
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// URL is the redis:// URL of database db, with the password if any.
func (s *Server) URL(db int) string {
	u := url.URL{Scheme: "redis", Host: s.Addr(), Path: "/" + strconv.Itoa(db)}
	if s.Password != "" {
		u.User = url.UserPassword("", s.Password)
	}
	return u.String()
}

// Start (re)starts the server on its port and waits until it answers PING.
func (s *Server) Start() error { return s.proc.Start() }

// ping sends AUTH (if any) and PING in RESP and expects +PONG.
func (s *Server) ping() error {
	c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	req := "PING\r\n"
	if s.Password != "" {
		req = fmt.Sprintf("*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n", len(s.Password), s.Password) + req
	}
	if _, err := c.Write([]byte(req)); err != nil {
		return err
	}
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err == nil && s.Password != "" {
		line, err = br.ReadString('\n')
	}
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("redistest: PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// Stop kills the server by its PID and waits for it; its data is gone
// (no persistence).
func (s *Server) Stop() { _ = s.proc.Stop() }

// Close stops the server and removes its directory.
func (s *Server) Close() error {
	s.Stop()
	return os.RemoveAll(s.Dir)
}
