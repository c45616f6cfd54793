package admin

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Listen opens the admin listener named by listen: "unix:/path/admin.sock"
// (mode 0600, its directory created 0700 if missing; a stale socket there
// is removed, a live one or another kind of file is an error) or a
// loopback "HOST:PORT" (127.0.0.1, [::1] or localhost; any other address
// is refused). The caller learns its address, and any error, before it
// serves: the address is one the proxy must never connect to.
func Listen(listen string) (net.Listener, error) { return listenAdmin(listen) }

// Serve serves h on ln (from Listen) until ctx is done, then shuts the
// server down (in-flight requests get 5s) and returns nil; it closes ln.
// log nil means slog.Default().
func Serve(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	return serveAdmin(ctx, ln, h, log)
}

// listenAdmin opens the admin listener named by listen.
func listenAdmin(listen string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(listen, "unix:"); ok {
		return listenUnix(path)
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("admin listen %q: %w", listen, err)
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Unmap().IsLoopback() {
		return nil, fmt.Errorf("admin listen %q: only a loopback address or unix:PATH is allowed", listen)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(ip.Unmap().String(), port))
	if err != nil {
		return nil, fmt.Errorf("admin listen: %w", err)
	}
	return ln, nil
}

// listenUnix listens on a Unix socket at path with mode 0600.
func listenUnix(path string) (net.Listener, error) {
	if path == "" {
		return nil, errors.New("admin listen unix: empty path")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("admin listen: %w", err)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin listen: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin listen: %w", err)
	}
	return ln, nil
}

// removeStale removes a socket at path that nobody listens on any more.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("admin listen: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("admin listen %s: exists and is not a socket", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("admin listen %s: another process is listening there", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("admin listen: %w", err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("admin listen: %w", err)
	}
	return nil
}

// serveAdmin serves h on ln until ctx is done; it closes ln.
func serveAdmin(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("admin API: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-errc // http.ErrServerClosed
	return err
}
