//go:build linux

package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/consoleproxy/consoleproxy/cmd/consoleproxy/admin"
	"github.com/consoleproxy/consoleproxy/relay/reuse"
	"github.com/consoleproxy/consoleproxy/relay/tokens"
)

// defaultStoreDir is the embedded store's directory when --token-store
// names none; the admin secret and socket live there by default.
const defaultStoreDir = "var"

// adminAPI is the admin API between its bind (before the loop starts: its
// address is one the proxy never dials) and its serving (once the loop
// runs: it lists the loop's sessions).
type adminAPI struct {
	ln         net.Listener
	listen     string // the listener as logged: unix:/absolute/path or HOST:PORT
	secret     []byte
	secretFile string // absolute
}

// listenAdmin reads (or creates) the admin secret and binds --admin-listen;
// nil with --admin-listen empty. A relative path in either flag is
// resolved here, once, against the directory the proxy starts in. The
// admin listener's TCP address joins a.own.
func (a *app) listenAdmin(o *options, storeDir string) (*adminAPI, error) {
	if o.adminListen == "" {
		return nil, nil
	}
	file := o.adminTokenFile
	if file == "" {
		file = filepath.Join(storeDir, "admin.secret")
		if err := os.MkdirAll(storeDir, 0o700); err != nil {
			return nil, fmt.Errorf("--admin-token-file: %w", err)
		}
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, fmt.Errorf("--admin-token-file: %w", err)
	}
	secret, err := admin.LoadOrCreateSecret(abs)
	if err != nil {
		return nil, fmt.Errorf("--admin-token-file: %w", err)
	}
	listen := o.adminListen
	if path, ok := strings.CutPrefix(listen, "unix:"); ok && path != "" {
		if path, err = filepath.Abs(path); err != nil {
			return nil, fmt.Errorf("--admin-listen: %w", err)
		}
		listen = "unix:" + path
	}
	ln, err := a.up.listenAdmin(listen) // inherited in a binary upgrade, else bound
	if err != nil {
		return nil, fmt.Errorf("--admin-listen: %w", err)
	}
	if ap, ok := tcpAddrPort(ln); ok {
		a.own = append(a.own, ap)
		listen = ap.String()
	}
	return &adminAPI{ln: ln, listen: listen, secret: secret, secretFile: abs}, nil
}

// serveAdmin serves the admin API on api's listener until ctx ends: tokens
// into a.store, sessions of a.srv.
func (a *app) serveAdmin(ctx context.Context, api *adminAPI, o *options) error {
	public := o.publicURL
	if public == "" {
		public = defaultPublicURL(o.consoleType, a.srv.Addr(), o.listen, a.tls != nil)
	}
	h, err := admin.New(admin.Config{
		Secret: api.secret, Store: a.store, ConsoleType: o.consoleType, PublicURL: public, Own: a.own,
		Sessions: a.srv, Revoked: a.revoked, Logger: a.log,
	})
	if err != nil {
		return err
	}
	_, writable := a.store.(tokens.Writable)
	a.log.Info("admin API listening", "listen", api.listen, "admin_token_file", api.secretFile,
		"public_url", logURL(public), "mint", writable)
	go func() {
		if err := admin.Serve(ctx, api.ln, h, a.log); err != nil {
			a.log.Error("admin API stopped", "err", err.Error())
		}
	}()
	return nil
}

// revoked runs after the admin API deleted a token's record: the token's
// live sessions end with close 1008 here and, through the reuse store, on
// every proxy sharing it (loop/revoke.go); later opens are refused.
func (a *app) revoked(ctx context.Context, h tokens.Hash) error {
	return a.srv.Revoke(ctx, reuse.Key(h))
}

// defaultPublicURL is --public-url's default: the console page on the
// listener, http://<listen>/vnc_lite.html for noVNC (https with --cert),
// spice_auto.html for SPICE, the WebSocket itself for serial (Nova's
// defaults for each kind). The port is the bound one (--listen may say
// 0); a wildcard host is replaced by this machine's name.
func defaultPublicURL(consoleType string, bound netip.AddrPort, listen string, tls bool) string {
	host, _, _ := net.SplitHostPort(listen)
	if a, err := netip.ParseAddr(host); host == "" || err == nil && a.IsUnspecified() {
		host = "localhost"
		if name, err := os.Hostname(); err == nil && name != "" {
			host = name
		}
	}
	hostport := net.JoinHostPort(host, strconv.Itoa(int(bound.Port())))
	scheme, page := "http", "/vnc_lite.html"
	switch consoleType {
	case "spice-html5":
		page = "/spice_auto.html"
	case "serial":
		scheme, page = "ws", "/"
	}
	if tls {
		scheme += "s"
	}
	return scheme + "://" + hostport + page
}

// close closes an admin listener that will not be served.
func (api *adminAPI) close() {
	if api != nil {
		_ = api.ln.Close()
	}
}

// logURL is u for a log line: its query, if any, shown as "…" (a query is
// never logged, whoever wrote it).
func logURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(not a URL)"
	}
	if p.RawQuery == "" {
		return u
	}
	p.RawQuery = "…"
	return p.String()
}
