//go:build linux

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/consoleproxy/consoleproxy/loop"
	"github.com/consoleproxy/consoleproxy/relay/tokens"
)

// options are the command line, docs/contract.md's flags and a few more.
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
// set either way. An error names the flag at fault (--max-sessions -1,
// --connect-timeout 5); --help prints the flags grouped (flagGroups) to out
// and returns flag.ErrHelp.
func parseFlags(args []string, env func(string) string, out io.Writer) (*options, map[string]bool, error) {
	o := &options{}
	fs := flag.NewFlagSet("consoleproxy", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned, in --flag form; usage is printed below
	fs.Usage = func() {}
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
	durationVar(fs, &o.connectTimeout, "connect-timeout", 5*time.Second, time.Nanosecond, "DNS plus TCP connect plus any CONNECT handshake toward a compute host")
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
	durationVar(fs, &o.leaseTTL, "lease-ttl", 30*time.Second, tokens.MinRedisLease, "an exclusive claim in the --reuse-store lapses this long after its proxy stops renewing it (renewed every third of it while the session lives)")
	durationVar(fs, &o.handshakeTimeout, "handshake-timeout", 10*time.Second, time.Nanosecond, "a client must finish its TLS handshake and HTTP upgrade within this")
	durationVar(fs, &o.idleTimeout, "idle-timeout", 0, 0, "close a session with no data either way for this long; 0 disables")
	nofile := openFileLimit()
	intVar(fs, &o.maxSessions, "max-sessions", loop.SessionsForFDs(nofile), 0, fmt.Sprintf("over this many sessions a new client gets HTTP 503; 0 means no cap. "+
		"The default is what the open-file limit allows: (RLIMIT_NOFILE - %d) / %d, here (%d - %d) / %d; "+
		"%d descriptors are kept for listeners, pollers, stores and logs, and a session holds %d (client and compute host)",
		loop.FDReserve, loop.FDsPerSession, nofile, loop.FDReserve, loop.FDsPerSession, loop.FDReserve, loop.FDsPerSession))
	intVar(fs, &o.maxPending, "max-pending", loop.DefaultMaxPending, 0, "connections still in the HTTP upgrade or the TLS handshake; past it a new connection is closed at accept; 0 means no cap")
	intVar(fs, &o.maxSessionsPerIP, "max-sessions-per-ip", 0, 0, "sessions per client address (the forwarded one from --trusted-proxies); past it HTTP 429; 0 means no cap")
	intVar(fs, &o.authFailuresPerIP, "auth-failures-per-ip", 0, 0, "refused tokens (missing, unknown, expired, wrong type) per client address per minute; past it that address gets HTTP 429 until the minute ends, before any token lookup; 0 means no limit")
	fs.StringVar(&o.logFormat, "log-format", "text", "text|json (structured logs on standard error)")
	fs.StringVar(&o.pidFile, "pid-file", "", "write the PID of the process serving now here (atomically); a binary upgrade (SIGUSR2) rewrites it with the new process's")
	// Beyond the contract.
	durationVar(fs, &o.pingInterval, "ping-interval", 30*time.Second, 0, "ping each client this often; one silent for two intervals is closed; 0 disables")
	durationVar(fs, &o.drainTimeout, "drain-timeout", 10*time.Second, 0, "on SIGTERM, how long to wait for sessions to close; after a binary upgrade (SIGUSR2), how long the old process's sessions may run on before they get close 1001")
	durationVar(fs, &o.upgradeTimeout, "upgrade-timeout", 30*time.Second, time.Nanosecond, "on SIGUSR2, how long the new process has to start and serve; past it it is killed and this one serves on")
	int64Var(fs, &o.maxBuffered, "max-buffered-bytes", 256<<10, 0, "host→client bytes buffered per session before the host is paused (TCP flow control)")
	fs.IntVar(&o.maxClientBacklog, "max-client-backlog", 0, "deprecated, ignored: a client faster than its host is now pushed back through TCP, never cut")
	durationVar(fs, &o.writeTimeout, "write-timeout", 30*time.Second, 0, "close a client or compute host that takes no byte for this long while the proxy holds bytes for it (also TCP_USER_TIMEOUT); 0 disables")
	int64Var(fs, &o.maxMessage, "max-message-bytes", 1<<20, 1, "largest client WebSocket frame and message (1009 past it)")
	intVar(fs, &o.workers, "workers", 64, 0, "goroutines for the handshake steps that may block: token lookups in Redis or novadb, the Redis reuse guard, DNS")
	intVar(fs, &o.queue, "worker-queue", 1024, 0, "handshakes waiting for a worker (those steps only); past it new clients get 503")
	fs.StringVar(&o.adminListen, "admin-listen", "unix:var/admin.sock", "the admin API (mint and revoke tokens, list and end sessions): unix:PATH or a loopback HOST:PORT; empty disables")
	fs.StringVar(&o.adminTokenFile, "admin-token-file", "", "the admin API's bearer secret (its first line); created 0600 with a random secret when missing; refused if group or others can read it (default admin.secret in the embedded store's directory)")
	fs.StringVar(&o.publicURL, "public-url", "", "the base of the console URL the admin API's mint answers with (default http://<listen>/vnc_lite.html; https with --cert)")
	fs.BoolVar(&o.demo, "demo", false, "also start a demo VNC console on loopback and print a URL with a fresh token (make run)")
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(out, fs)
		return nil, nil, err
	}
	if err != nil {
		return nil, nil, flagError(err)
	}
	if fs.NArg() > 0 {
		return nil, nil, fmt.Errorf("unexpected argument %q (flags are --name value; consoleproxy --help lists them)", fs.Arg(0))
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	fs.VisitAll(func(f *flag.Flag) {
		name := "CONSOLEPROXY_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := env(name); v != "" && !explicit[f.Name] && err == nil {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s (--%s) %q: %w", name, f.Name, v, e)
			}
			explicit[f.Name] = true
		}
	})
	return o, explicit, err
}

// flagErrorForms are the flag package's messages and what they become: the
// flag named as the README writes it (--name), with its value.
var flagErrorForms = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`^invalid value ("(?:[^"\\]|\\.)*") for flag -([\w-]+): (?:parse error)?(.*)$`), "--$2 $1: $3"},
	{regexp.MustCompile(`^invalid boolean value ("(?:[^"\\]|\\.)*") for -([\w-]+): (.*)$`), "--$2 $1: not true or false"},
	{regexp.MustCompile(`^flag provided but not defined: -+([\w-]+)$`), "unknown flag --$1 (consoleproxy --help lists the flags)"},
	{regexp.MustCompile(`^flag needs an argument: -+([\w-]+)$`), "--$1 needs a value"},
}

// flagError rewrites an error of flag.FlagSet.Parse to name the flag as
// --name.
func flagError(err error) error {
	msg := err.Error()
	for _, f := range flagErrorForms {
		if f.re.MatchString(msg) {
			return errors.New(strings.TrimSuffix(strings.TrimSpace(f.re.ReplaceAllString(msg, f.repl)), ":"))
		}
	}
	return err
}

// durationFlag is a time.Duration flag that needs a unit and has a floor.
type durationFlag struct {
	p   *time.Duration
	min time.Duration
}

func durationVar(fs *flag.FlagSet, p *time.Duration, name string, def, min time.Duration, usage string) {
	*p = def
	fs.Var(&durationFlag{p, min}, name, usage)
}

func (d *durationFlag) String() string {
	if d.p == nil {
		return "0s"
	}
	return d.p.String()
}

func (d *durationFlag) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		if _, nerr := strconv.ParseFloat(s, 64); nerr == nil {
			return fmt.Errorf("a duration needs a unit, such as %ss or %sms", s, s)
		}
		return errors.New("not a duration (such as 5s, 500ms, 2m)")
	}
	switch {
	case v >= d.min:
	case d.min == 0:
		return errors.New("must not be negative (0 disables it)")
	case d.min == time.Nanosecond:
		return errors.New("must be more than 0")
	default:
		return fmt.Errorf("must be at least %v", d.min)
	}
	*d.p = v
	return nil
}

// wholeFlag is an int or int64 flag with a floor.
type wholeFlag[T int | int64] struct {
	p   *T
	min T
}

func intVar(fs *flag.FlagSet, p *int, name string, def, min int, usage string) {
	wholeVar(fs, p, name, def, min, usage)
}

func int64Var(fs *flag.FlagSet, p *int64, name string, def, min int64, usage string) {
	wholeVar(fs, p, name, def, min, usage)
}

func wholeVar[T int | int64](fs *flag.FlagSet, p *T, name string, def, min T, usage string) {
	*p = def
	fs.Var(&wholeFlag[T]{p, min}, name, usage)
}

func (f *wholeFlag[T]) String() string {
	if f.p == nil {
		return "0"
	}
	return strconv.FormatInt(int64(*f.p), 10)
}

func (f *wholeFlag[T]) Set(s string) error {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || int64(T(v)) != v {
		return errors.New("not a whole number")
	}
	if T(v) < f.min {
		return fmt.Errorf("must be %d or more", f.min)
	}
	*f.p = T(v)
	return nil
}

// flagGroups orders --help the way an operator thinks. Every flag is in
// exactly one group (TestHelpGroupsEveryFlag).
var flagGroups = []struct {
	title string
	flags []string
}{
	{"Listener", []string{"listen", "console-type", "web", "allowed-origins", "trusted-proxies", "handshake-timeout", "ping-interval", "idle-timeout", "max-message-bytes"}},
	{"TLS", []string{"cert", "key", "ssl-only", "ssl-minimum-version", "ssl-ciphers", "ssl-client-ca"}},
	{"Tokens", []string{"token-store", "token-reuse", "enforce-session-timeout"}},
	{"Compute hosts", []string{"allowed-targets", "compute-proxy", "compute-proxy-auth-file", "connect-timeout", "write-timeout", "max-buffered-bytes"}},
	{"Limits", []string{"max-sessions", "max-pending", "max-sessions-per-ip", "auth-failures-per-ip", "workers", "worker-queue", "max-client-backlog"}},
	{"VeNCrypt toward compute hosts", []string{"vnc-auth-schemes", "vencrypt-ca-certs", "vencrypt-client-cert", "vencrypt-client-key", "vencrypt-skip-hostname"}},
	{"Fleet", []string{"reuse-store", "lease-ttl"}},
	{"Admin API", []string{"admin-listen", "admin-token-file", "public-url"}},
	{"Process", []string{"nova-config", "metrics-listen", "log-format", "drain-timeout", "pid-file", "upgrade-timeout", "demo"}},
}

// printUsage writes --help: the flags by group, as --name VALUE, each with
// its default (durations with their unit).
func printUsage(out io.Writer, fs *flag.FlagSet) {
	var b strings.Builder
	b.WriteString("usage: consoleproxy [--flag value ...]\n\n" +
		"Every flag may also be set as CONSOLEPROXY_<FLAG> (upper snake case); flags win.\n" +
		"Durations need a unit: 500ms, 5s, 2m, 1h.\n")
	seen := map[string]bool{}
	for _, g := range flagGroups {
		fmt.Fprintf(&b, "\n%s:\n", g.title)
		for _, name := range g.flags {
			if f := fs.Lookup(name); f != nil {
				writeFlag(&b, f)
				seen[name] = true
			}
		}
	}
	var rest []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if !seen[f.Name] {
			rest = append(rest, f)
		}
	})
	if len(rest) > 0 {
		b.WriteString("\nOther:\n")
		for _, f := range rest {
			writeFlag(&b, f)
		}
	}
	_, _ = io.WriteString(out, b.String()) // --help's output: nothing to do if it fails
}

// flagArgs names each string flag's value in --help; a duration is
// DURATION, a number N, a switch nothing.
var flagArgs = map[string]string{
	"listen": "HOST:PORT", "metrics-listen": "HOST:PORT", "admin-listen": "ADDR",
	"token-store": "SPEC", "console-type": "TYPE", "allowed-origins": "LIST", "trusted-proxies": "CIDRS",
	"cert": "FILE", "key": "FILE", "ssl-minimum-version": "VERSION", "ssl-ciphers": "LIST", "ssl-client-ca": "FILE",
	"allowed-targets": "CIDRS", "compute-proxy": "URL", "compute-proxy-auth-file": "FILE",
	"nova-config": "FILE", "web": "DIR", "vnc-auth-schemes": "LIST", "vencrypt-ca-certs": "FILE",
	"vencrypt-client-cert": "FILE", "vencrypt-client-key": "FILE", "token-reuse": "POLICY",
	"reuse-store": "URL", "log-format": "FORMAT", "max-client-backlog": "N",
}

func writeFlag(b *strings.Builder, f *flag.Flag) {
	arg := flagArgs[f.Name]
	switch f.Value.(type) {
	case *durationFlag:
		arg = "DURATION"
	case *wholeFlag[int], *wholeFlag[int64]:
		arg = "N"
	}
	if arg == "" {
		arg = "VALUE"
		if _, n := flag.UnquoteUsage(f); n == "int" {
			arg = "N"
		}
	}
	if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
		arg = ""
	}
	fmt.Fprintf(b, "  --%s", f.Name)
	if arg != "" {
		fmt.Fprintf(b, " %s", arg)
	}
	fmt.Fprintf(b, "\n      %s", f.Usage)
	if def := f.DefValue; arg != "" && def != "" {
		fmt.Fprintf(b, " (default %s)", def)
	}
	b.WriteString("\n")
}

// checkOptions finds every mistake that config and the stores would find
// later, so that it is reported before any lock is taken or port bound (a
// bad --lease-ttl must not hide behind "address already in use").
func checkOptions(o *options) error {
	if _, err := config(o, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		return err
	}
	_, err := reuseStore(o)
	return err
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
