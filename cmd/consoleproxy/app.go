//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/consoleproxy/consoleproxy/cmd/consoleproxy/admin"
	"github.com/consoleproxy/consoleproxy/loop"
	"github.com/consoleproxy/consoleproxy/loop/policy"
	"github.com/consoleproxy/consoleproxy/loop/web"
	"github.com/consoleproxy/consoleproxy/relay"
	"github.com/consoleproxy/consoleproxy/relay/reuse"
	"github.com/consoleproxy/consoleproxy/relay/rfb"
	"github.com/consoleproxy/consoleproxy/relay/tokens"
	"github.com/consoleproxy/consoleproxy/wsframe"
)

// app is the running proxy: the server, its token store, the metrics and
// admin listeners.
type app struct {
	log     *slog.Logger
	srv     *loop.Server
	store   tokens.Store
	guard   *tokens.RedisGuard // nil: the in-process guard
	metrics *http.Server
	cancel  context.CancelFunc
	webDir  string
	// storeDir is the embedded store's directory, absolute; the default
	// one for the other stores (where the admin secret lives by default).
	storeDir string
	tls      *tlsFiles        // nil without TLS
	own      []netip.AddrPort // the proxy's own listeners: never a compute host nor a minted target (own.go)
	// security is the RFB security proxy, nil without VeNCrypt.
	security *rfb.Proxy
	up       *upgrade // listeners handed over by SIGUSR2 (upgrade.go); nil: none
}

func start(o *options, explicit map[string]bool, log *slog.Logger) (*app, error) {
	return startWith(o, explicit, log, nil)
}

// startWith is start taking its listeners from up (inherited in a binary
// upgrade, else new and registered for the next one).
func startWith(o *options, explicit map[string]bool, log *slog.Logger, up *upgrade) (*app, error) {
	cfg, err := config(o, log)
	if err != nil {
		return nil, err
	}
	if explicit["max-client-backlog"] {
		log.Warn("--max-client-backlog is deprecated and ignored: a client faster than its compute host is pushed back through TCP")
	}
	if o.adminListen == "" && (explicit["admin-token-file"] || explicit["public-url"]) {
		log.Warn("--admin-token-file and --public-url have no effect with --admin-listen empty (the admin API is off)")
	}
	a := &app{log: log, security: cfg.Security, up: up}
	if cfg.TLS, a.tls, err = tlsConfig(o, explicit); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	// Bound first: the admin API and the dials must know every listener.
	metricsLn, err := a.listenMetrics(o.metricsListen)
	if err == nil {
		a.own, err = ownListeners(o.listen, metricsLn)
	}
	if err == nil {
		cfg.Store, err = a.openStore(o)
	}
	if err != nil {
		closeListener(metricsLn)
		cancel()
		return nil, err
	}
	a.store = cfg.Store
	adminAPI, err := a.listenAdmin(o, a.storeDir) // adds a TCP admin listener to a.own
	if err != nil {
		closeListener(metricsLn)
		a.store.Close()
		cancel()
		return nil, err
	}
	cfg.Dial.Deny = a.own
	if err = a.openReuse(o, &cfg); err != nil {
		closeListener(metricsLn)
		adminAPI.close()
		a.store.Close()
		cancel()
		return nil, err
	}
	if a.srv, err = loop.New(cfg); err == nil {
		a.observeGuard()
		err = a.loadWeb(o.web)
	}
	if err == nil {
		err = a.up.startServer(a.srv, o.listen)
	}
	if err == nil && adminAPI != nil {
		if err = a.serveAdmin(ctx, adminAPI, o); err != nil {
			_ = a.srv.Shutdown(context.Background())
		}
	}
	if err != nil {
		closeListener(metricsLn)
		adminAPI.close()
		a.closeStores()
		cancel()
		return nil, err
	}
	a.startMetrics(metricsLn)
	log.Info("consoleproxy listening", "listen", a.srv.Addr().String(), "console_type", cfg.ConsoleType,
		"max_sessions", cfg.MaxSessions, "open_files", openFileLimit(), "max_pending", o.maxPending,
		"max_sessions_per_ip", cfg.MaxSessionsPerIP, "auth_failures_per_ip", cfg.AuthFailuresPerIP)
	if o.demo {
		if err := a.startDemo(ctx, o); err != nil {
			_ = a.stop(context.Background())
			return nil, err
		}
	}
	return a, nil
}

// config maps the options onto loop.Config; every error is a start-up error.
func config(o *options, log *slog.Logger) (loop.Config, error) {
	cfg := loop.Config{
		Listen: o.listen, ConsoleType: o.consoleType, Logger: log, EventLoops: startProcs,
		HandshakeTimeout: o.handshakeTimeout, IdleTimeout: o.idleTimeout,
		EnforceSessionTimeout: o.enforceSessionTimeout, MaxSessions: o.maxSessions,
		MaxPending: o.maxPending, MaxSessionsPerIP: o.maxSessionsPerIP, AuthFailuresPerIP: o.authFailuresPerIP,
		Workers: o.workers, Queue: o.queue, WriteTimeout: offIfZero(o.writeTimeout),
		MaxFrameSize: o.maxMessage, MaxMessageSize: o.maxMessage, DrainTimeout: o.drainTimeout,
		Dial:  relay.DialConfig{Timeout: o.connectTimeout},
		Relay: relay.Config{HighWater: o.maxBuffered},
	}
	cfg.PingInterval = o.pingInterval
	if o.pingInterval == 0 {
		cfg.PingInterval = -1
	}
	switch o.consoleType {
	case "novnc", "spice-html5":
	case "serial":
		if o.web != "" {
			// nova-serialproxy serves no files: its clients are programs
			// (novaconsole, Horizon's xterm.js) that bring their own.
			return cfg, errors.New("--web is not served with --console-type serial (nova-serialproxy serves no static files)")
		}
	default:
		return cfg, fmt.Errorf("--console-type must be novnc, serial or spice-html5")
	}
	// The flags refuse these already; nova.conf or a caller may not have.
	for _, c := range []struct {
		flag string
		bad  bool
	}{
		{"--max-sessions", o.maxSessions < 0}, {"--max-buffered-bytes", o.maxBuffered < 0},
		{"--max-message-bytes", o.maxMessage <= 0}, {"--connect-timeout", o.connectTimeout <= 0},
		{"--handshake-timeout", o.handshakeTimeout <= 0}, {"--max-pending", o.maxPending < 0},
		{"--max-sessions-per-ip", o.maxSessionsPerIP < 0}, {"--auth-failures-per-ip", o.authFailuresPerIP < 0},
	} {
		if c.bad {
			return cfg, fmt.Errorf("%s must be positive", c.flag)
		}
	}
	if o.maxPending == 0 {
		cfg.MaxPending = -1 // the flag's 0 is no cap; loop.Config's 0 is its default
	}
	if o.publicURL != "" {
		if err := admin.CheckPublicURL(o.publicURL); err != nil {
			return cfg, err
		}
	}
	if o.leaseTTL < tokens.MinRedisLease {
		return cfg, fmt.Errorf("--lease-ttl must be at least %v", tokens.MinRedisLease)
	}
	var err error
	if cfg.Origins.Allowed, err = policy.ParseAllowedOrigins(o.allowedOrigins); err != nil {
		return cfg, err
	}
	if cfg.Trusted, err = policy.ParseTrustedProxies(o.trustedProxies); err != nil {
		return cfg, err
	}
	if cfg.Dial.Allowed, err = relay.ParseTargets(o.allowedTargets); err != nil {
		return cfg, err
	}
	if o.computeProxy != "" {
		if cfg.Dial.Proxy, err = relay.ParseForwardProxy(o.computeProxy, o.computeProxyAuth); err != nil {
			return cfg, err
		}
	}
	rp, err := reuse.ParsePolicy(o.tokenReuse)
	if err != nil {
		return cfg, err
	}
	cfg.Reuse = reuse.NewLocalGuard(rp, time.Now)
	cfg.Request = wsframe.RequestLimits{}
	if cfg.Security, err = securityProxy(o); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// openStore opens the --token-store.
func (a *app) openStore(o *options) (tokens.Store, error) {
	spec := o.tokenStore
	a.storeDir = defaultStoreDir
	switch {
	case strings.HasPrefix(spec, "file:"):
		return tokens.OpenFile(tokens.FileConfig{Path: strings.TrimPrefix(spec, "file:"), Logger: a.log})
	case spec == "" || spec == "embedded" || strings.HasPrefix(spec, "embedded:"):
		return a.openEmbedded(strings.TrimPrefix(strings.TrimPrefix(spec, "embedded"), ":"))
	case strings.HasPrefix(spec, "novadb:"):
		return a.openNovaDB(strings.TrimPrefix(spec, "novadb:"))
	case isRedis(spec):
		u, err := tokens.ParseRedisURL(spec)
		if err != nil {
			return nil, fmt.Errorf("--token-store: %w", err)
		}
		a.log.Info("token store: redis", "redis", u.String())
		return tokens.OpenRedis(tokens.RedisConfig{URL: u, Logger: a.log}), nil
	}
	return nil, errors.New("--token-store must be file:PATH, novadb:DSN, redis://… or empty for the embedded store")
}

// openEmbedded opens the embedded store in dir (default var), resolved
// once to an absolute path and logged: a proxy started from another
// directory names the store it opened, rather than silently making a new
// empty one.
func (a *app) openEmbedded(dir string) (tokens.Store, error) {
	if dir == "" {
		dir = defaultStoreDir
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("--token-store: %w", err)
	}
	a.storeDir = abs
	cfg := tokens.EmbeddedConfig{Dir: abs, Logger: a.log}
	if a.up.handedOver() {
		a.log.Info("token store: embedded, opened once the process before lets it go", "dir", abs)
		return openLate(cfg, a.up.parentGone, a.log), nil
	}
	e, err := tokens.OpenEmbedded(cfg)
	if err != nil {
		return nil, err
	}
	a.log.Info("token store: embedded", "dir", abs, "tokens", e.Len())
	return e, nil
}

// listenMetrics binds --metrics-listen (or takes it over); nil when it is
// empty.
func (a *app) listenMetrics(listen string) (net.Listener, error) {
	if listen == "" {
		return nil, nil
	}
	ln, err := a.up.listenTCP(listen)
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	return ln, nil
}

func closeListener(ln net.Listener) {
	if ln != nil {
		_ = ln.Close()
	}
}

// startMetrics serves the metrics, health and readiness on ln (nil: none).
func (a *app) startMetrics(ln net.Listener) {
	if ln == nil {
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		a.srv.WriteMetrics(w)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !a.srv.Ready() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	a.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second}
	go func() { _ = a.metrics.Serve(ln) }()
}

// loadWeb loads --web into memory (and again on SIGHUP).
func (a *app) loadWeb(dir string) error {
	a.webDir = dir
	if dir == "" {
		return nil
	}
	site, err := web.Load(dir)
	if err != nil {
		return err
	}
	a.srv.SetWeb(site)
	a.log.Info("serving static files", "dir", dir, "bytes", site.Bytes)
	return nil
}

func (a *app) reload() {
	if a.tls != nil {
		a.tls.reload(a.log)
	}
	if err := a.loadWeb(a.webDir); err != nil {
		a.log.Warn("reload of --web failed; the previous files stay", "err", err.Error())
	}
	if a.security != nil {
		if err := a.security.Reload(); err != nil {
			a.log.Warn("reload of the VeNCrypt certificates failed; the previous ones stay", "err", err.Error())
		}
	}
	if err := a.store.Reload(); err != nil {
		a.log.Warn("reload failed", "err", err.Error())
		return
	}
	a.log.Info("reloaded")
}

// stop drains sessions, then closes the listeners and the store.
func (a *app) stop(ctx context.Context) error {
	err := a.srv.Shutdown(ctx)
	if a.metrics != nil {
		_ = a.metrics.Close()
	}
	a.cancel()
	a.closeStores()
	return err
}

// handover is stop for the old process of a binary upgrade: the new one
// serves the shared metrics and admin sockets from now on, and the
// sessions here run on until they end or ctx ends (loop.Handover).
func (a *app) handover(ctx context.Context) error {
	if a.metrics != nil {
		_ = a.metrics.Close()
	}
	a.cancel() // the admin API (its socket stays: the new process serves it)
	a.srv.StopAccepting()
	a.releaseStore()
	err := a.srv.DrainHandedOver(ctx)
	a.closeStores()
	return err
}

// closeStores closes the reuse guard (running its queued releases), then the
// token store.
func (a *app) closeStores() {
	if a.guard != nil {
		_ = a.guard.Close()
	}
	a.store.Close()
}

// securityProxy builds the RFB security proxy from --vnc-auth-schemes and
// the --vencrypt-* files; nil for "none" alone.
func securityProxy(o *options) (*rfb.Proxy, error) {
	schemes, err := rfb.ParseSchemes(o.vncAuthSchemes)
	if err != nil {
		return nil, fmt.Errorf("--vnc-auth-schemes: %w", err)
	}
	sp, err := rfb.New(rfb.Config{
		Schemes: schemes, CAFile: o.vencryptCA, CertFile: o.vencryptCert, KeyFile: o.vencryptKey,
		SkipHostname: o.vencryptSkipHostname,
	})
	if err != nil {
		return nil, err
	}
	if sp != nil && o.consoleType != "novnc" {
		return nil, fmt.Errorf("--vnc-auth-schemes %s is for --console-type novnc", o.vncAuthSchemes)
	}
	if sp == nil && (o.vencryptCA != "" || o.vencryptCert != "" || o.vencryptKey != "") {
		return nil, errors.New("--vencrypt-* files are set but --vnc-auth-schemes does not name vencrypt")
	}
	return sp, nil
}

// offIfZero maps a flag's "0 disables" onto a loop.Config duration, where
// 0 takes the default and a negative value turns the timer off.
func offIfZero(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
