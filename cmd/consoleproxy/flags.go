package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/consoleproxy/consoleproxy/loop"
)

// options are the command line, CONTRACT.md's flags and a few more.
type options struct {
	listen, metricsListen, tokenStore, consoleType    string
	allowedOrigins, trustedProxies                    string
	cert, key, sslMinVersion, sslCiphers, sslClientCA string
	sslOnly                                           bool
	allowedTargets, computeProxy, web                 string
	computeProxyAuth                                  string
	novaConfig                                        multi
	connectTimeout, handshakeTimeout, idleTimeout     time.Duration
	pingInterval, drainTimeout, writeTimeout          time.Duration
	enforceSessionTimeout                             bool
	tokenReuse, logFormat, adminListen                string
	reuseStore                                        string
	adminTokenFile, publicURL                         string
	leaseTTL                                          time.Duration
	pidFile                                           string
	upgradeTimeout                                    time.Duration
	maxSessions, workers, queue, maxClientBacklog     int
	maxPending, maxSessionsPerIP, authFailuresPerIP   int
	maxBuffered, maxMessage                           int64
	demo                                              bool
	vncAuthSchemes, vencryptCA                        string
	vencryptCert, vencryptKey                         string
	vencryptSkipHostname                              bool
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// parseFlags reads args, then CONSOLEPROXY_<FLAG> environment variables for
// flags not given on the command line (flags win). explicit holds the names
// set either way.
func parseFlags(args []string, env func(string) string, out io.Writer) (*options, map[string]bool, error) {
	o := &options{}
	fs := flag.NewFlagSet("consoleproxy", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:6080", "the WebSocket listener, HOST:PORT (IPv4 or [v6]:port)")
	fs.StringVar(&o.metricsListen, "metrics-listen", "127.0.0.1:9180", "serves GET /metrics, /healthz, /readyz; empty disables")
	fs.StringVar(&o.tokenStore, "token-store", "", "file:PATH (JSON Lines), novadb:DSN, redis://…, or empty for the embedded store under ./var/")
	fs.StringVar(&o.consoleType, "console-type", "novnc", "novnc|serial|spice-html5: the console kind this listener serves")
	fs.StringVar(&o.allowedOrigins, "allowed-origins", "", "comma-separated host names or full origins allowed besides the request's Host")
	fs.StringVar(&o.trustedProxies, "trusted-proxies", "", "CIDRs whose X-Forwarded-Proto / X-Forwarded-For / Forwarded headers are believed")
	fs.StringVar(&o.cert, "cert", "", "TLS certificate file (serve wss://)")
	fs.StringVar(&o.key, "key", "", "TLS private key file")
	fs.BoolVar(&o.sslOnly, "ssl-only", false, "refuse plain connections")
	fs.StringVar(&o.sslMinVersion, "ssl-minimum-version", "tlsv1.2", "tlsv1.2 or tlsv1.3")
	fs.StringVar(&o.sslCiphers, "ssl-ciphers", "", "OpenSSL-style names of the TLS 1.2 suites allowed")
	fs.StringVar(&o.sslClientCA, "ssl-client-ca", "", "require and verify client certificates against this CA file")
	fs.StringVar(&o.allowedTargets, "allowed-targets", "", "CIDRs of compute hosts the proxy may connect to (checked after DNS); empty allows any but the proxy's own listeners, which are always refused")
	fs.StringVar(&o.computeProxy, "compute-proxy", "", "reach compute hosts through this forward HTTP proxy (CONNECT host:port)")
	fs.StringVar(&o.computeProxyAuth, "compute-proxy-auth-file", "", "file holding user:password for the --compute-proxy (Proxy-Authorization: Basic)")
	fs.DurationVar(&o.connectTimeout, "connect-timeout", 5*time.Second, "DNS plus TCP connect plus any CONNECT handshake toward a compute host")
	fs.Var(&o.novaConfig, "nova-config", "read Nova's options from this nova.conf (repeatable; flags win)")
	fs.StringVar(&o.web, "web", "", "serve static files (noVNC) from this directory")
	fs.StringVar(&o.vncAuthSchemes, "vnc-auth-schemes", "none", "Nova's [vnc] auth_schemes toward compute hosts, in order of preference: none, vencrypt (TLS with X.509, the RFB security proxy)")
	fs.StringVar(&o.vencryptCA, "vencrypt-ca-certs", "", "CA certificates compute hosts' VNC certificates must chain to (required with vencrypt)")
	fs.StringVar(&o.vencryptCert, "vencrypt-client-cert", "", "the proxy's client certificate for VeNCrypt (with --vencrypt-client-key)")
	fs.StringVar(&o.vencryptKey, "vencrypt-client-key", "", "the key of --vencrypt-client-cert")
	fs.BoolVar(&o.vencryptSkipHostname, "vencrypt-skip-hostname", false, "check only the compute host certificate's chain, not that it names the token's host (Nova's behaviour)")
	fs.BoolVar(&o.enforceSessionTimeout, "enforce-session-timeout", false, "end a session when its token expires")
	fs.StringVar(&o.tokenReuse, "token-reuse", "exclusive", "exclusive|single-use|shared|takeover (a new session ends the older one, wherever it runs)")
	fs.StringVar(&o.reuseStore, "reuse-store", "", "redis://[user:pass@]host:port[/db] (or rediss://, or a Sentinel URL: redis://sentinel:port[/db]?master_name=NAME&addr=sentinel2:port) holding --token-reuse state for the whole fleet; default: the --token-store if it is Redis, else in process")
	fs.DurationVar(&o.leaseTTL, "lease-ttl", 30*time.Second, "an exclusive claim in the --reuse-store lapses this long after its proxy stops renewing it (renewed every third of it while the session lives); at least 3s")
	fs.DurationVar(&o.handshakeTimeout, "handshake-timeout", 10*time.Second, "a client must finish its HTTP upgrade within this")
	fs.DurationVar(&o.idleTimeout, "idle-timeout", 0, "close a session with no data either way for this long; 0 disables")
	nofile := openFileLimit()
	fs.IntVar(&o.maxSessions, "max-sessions", loop.SessionsForFDs(nofile), fmt.Sprintf("over this many sessions a new client gets HTTP 503; 0 means no cap. "+
		"The default is what the open-file limit allows: (RLIMIT_NOFILE - %d) / %d, here (%d - %d) / %d; "+
		"%d descriptors are kept for listeners, pollers, stores and logs, and a session holds %d (client and compute host; a wss:// session holds 4 until TLS moves onto the event loop)",
		loop.FDReserve, loop.FDsPerSession, nofile, loop.FDReserve, loop.FDsPerSession, loop.FDReserve, loop.FDsPerSession))
	fs.IntVar(&o.maxPending, "max-pending", loop.DefaultMaxPending, "connections still in the HTTP upgrade or the TLS handshake; past it a new connection is closed at accept; 0 means no cap")
	fs.IntVar(&o.maxSessionsPerIP, "max-sessions-per-ip", 0, "sessions per client address (the forwarded one from --trusted-proxies); past it HTTP 429; 0 means no cap")
	fs.IntVar(&o.authFailuresPerIP, "auth-failures-per-ip", 0, "refused tokens (missing, unknown, expired, wrong type) per client address per minute; past it that address gets HTTP 429 until the minute ends, before any token lookup; 0 means no limit")
	fs.StringVar(&o.logFormat, "log-format", "text", "text|json (structured logs on standard error)")
	fs.StringVar(&o.pidFile, "pid-file", "", "write the PID of the process serving now here (atomically); a binary upgrade (SIGUSR2) rewrites it with the new process's")
	// Beyond the contract.
	fs.DurationVar(&o.pingInterval, "ping-interval", 30*time.Second, "ping each client this often; one silent for two intervals is closed; 0 disables")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 10*time.Second, "on SIGTERM, how long to wait for sessions to close; after a binary upgrade (SIGUSR2), how long the old process's sessions may run on before they get close 1001")
	fs.DurationVar(&o.upgradeTimeout, "upgrade-timeout", 30*time.Second, "on SIGUSR2, how long the new process has to start and serve; past it it is killed and this one serves on")
	fs.Int64Var(&o.maxBuffered, "max-buffered-bytes", 256<<10, "host→client bytes buffered per session before the host is paused (TCP flow control)")
	fs.IntVar(&o.maxClientBacklog, "max-client-backlog", 0, "deprecated, ignored: a client faster than its host is now pushed back through TCP, never cut")
	fs.DurationVar(&o.writeTimeout, "write-timeout", 30*time.Second, "close a client or compute host that takes no byte for this long while the proxy holds bytes for it (also TCP_USER_TIMEOUT); 0 disables")
	fs.Int64Var(&o.maxMessage, "max-message-bytes", 1<<20, "largest client WebSocket frame and message (1009 past it)")
	fs.IntVar(&o.workers, "workers", 64, "goroutines for token lookups and dials")
	fs.IntVar(&o.queue, "worker-queue", 1024, "handshakes waiting for a worker; past it new clients get 503")
	fs.StringVar(&o.adminListen, "admin-listen", "unix:var/admin.sock", "the admin API (mint and revoke tokens, list and end sessions): unix:PATH or a loopback HOST:PORT; empty disables")
	fs.StringVar(&o.adminTokenFile, "admin-token-file", "", "the admin API's bearer secret (its first line); created 0600 with a random secret when missing; refused if group or others can read it (default admin.secret in the embedded store's directory)")
	fs.StringVar(&o.publicURL, "public-url", "", "the base of the console URL the admin API's mint answers with (default http://<listen>/vnc_lite.html; https with --cert)")
	fs.BoolVar(&o.demo, "demo", false, "also start a demo VNC console on loopback and print a URL with a fresh token (make run)")
	fs.Usage = func() {
		fmt.Fprintf(out, "usage: consoleproxy [flags]\n\nEvery flag may also be set as CONSOLEPROXY_<FLAG> (upper snake case); flags win.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if fs.NArg() > 0 {
		return nil, nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name := "CONSOLEPROXY_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := env(name); v != "" && !explicit[f.Name] && err == nil {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s: %w", name, e)
			}
			explicit[f.Name] = true
		}
	})
	return o, explicit, err
}

// notYet refuses flags whose feature has not landed, rather than accepting
// and ignoring them.
func notYet(explicit map[string]bool) error {
	for _, f := range []string{} { // none at the moment
		if explicit[f] {
			return fmt.Errorf("--%s is not supported yet", f)
		}
	}
	return nil
}

// raiseOpenFileLimit lifts the soft RLIMIT_NOFILE to the hard one (each
// session holds descriptors; Go's runtime does the same at start since 1.19,
// this says so where --max-sessions' default depends on it) and returns the
// soft limit now in force.
func raiseOpenFileLimit() (uint64, error) {
	var l unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &l); err != nil {
		return 0, fmt.Errorf("getrlimit: %w", err)
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &l); err != nil {
			return 0, fmt.Errorf("raise the open-file limit to %d: %w", l.Max, err)
		}
	}
	return l.Cur, nil
}

// openFileLimit is the soft RLIMIT_NOFILE (0 if unknown, which gives
// --max-sessions a default of 1: a visible misconfiguration, not no cap).
func openFileLimit() uint64 {
	var l unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	return l.Cur
}
