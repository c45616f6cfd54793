package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"syscall"
	"time"
)

// Target is a proxy under test: a small adapter that starts it for one run
// with tokens for the run's sessions, says how clients reach it, and stops
// it. Add a proxy by writing one and registering it in targets.
type Target interface {
	// Start launches the proxy; tokens[i] is the console behind token i.
	Start(ctx context.Context, spec RunSpec) (Endpoint, error)
	// PID is the root of the process tree to measure (children included).
	PID() int
	// Stop ends the proxy and every process it started.
	Stop() error
}

// RunSpec is what a target needs for one run.
type RunSpec struct {
	Dir     string // where its token file, configuration and log go
	Tokens  []Mode // the console behind each token index
	Backend *Backend
	MaxConn int // sessions the run opens at most at once
	// Metrics asks for the target's metrics listener (consoleproxy's
	// --metrics-listen), so its goroutines can be read; targets without
	// one ignore it.
	Metrics bool
	// TLS, when set, asks for a TLS listener with this certificate
	// (Endpoint.TLSAddr).
	TLS *TLSFiles
	// IdleTimeout, when set, replaces the TCP relay's 1 h client and server
	// timeouts (haproxy's own defence against peers that stall); the
	// WebSocket proxies keep their defaults.
	IdleTimeout time.Duration
}

// Endpoint is how the client reaches a started target.
type Endpoint struct {
	WebSocket bool
	Addrs     [numModes]*net.TCPAddr // per console mode (one listener for all on a WebSocket proxy)
	Host      string
	Path      func(token int) string
	// MetricsURL is the Prometheus endpoint when RunSpec.Metrics was asked
	// and the target has one, else "".
	MetricsURL string
	// TLSAddr is the TLS listener when RunSpec.TLS was given (on a
	// WebSocket proxy the same port as plain: it tells them apart by the
	// first byte), else nil.
	TLSAddr *net.TCPAddr
	// TLSAddrs is the TLS listener per console mode when RunSpec.TLS was
	// given (TLSAddr is TLSAddrs[ModeEcho]); nil entries otherwise.
	TLSAddrs [numModes]*net.TCPAddr
}

// withTLS sets ep's TLS listeners to its plain ones: a WebSocket proxy
// tells TLS from plain by the first byte on the same port.
func (ep Endpoint) withTLS() Endpoint {
	ep.TLSAddrs = ep.Addrs
	ep.TLSAddr = ep.Addrs[ModeEcho]
	return ep
}

// targets maps a name to its adapter's constructor.
var targets = map[string]func(c Config) Target{
	"consoleproxy": func(c Config) Target { return &consoleproxyTarget{bin: c.ConsoleproxyPath, args: c.ConsoleproxyArgs} },
	"websockify":   func(c Config) Target { return &websockifyTarget{bin: c.WebsockifyPath} },
	"tcp-relay":    func(c Config) Target { return &haproxyTarget{bin: c.HaproxyPath} },
}

// TargetNames lists the adapters.
func TargetNames() []string {
	var ns []string
	for n := range targets {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return ns
}

func knownTarget(n string) bool { return targets[n] != nil }

// tokenName is the secret of token i in a run.
func tokenName(i int) string { return fmt.Sprintf("cbtok%08d", i) }

func tokenPath(i int) string { return "/?token=" + tokenName(i) }

// proc is a started proxy process in its own process group.
type proc struct {
	cmd    *exec.Cmd
	log    *os.File
	exited chan struct{} // closed once the leader is reaped
}

// startProc runs bin with args, output to dir/name.log, in a new process
// group (so that Stop reaches forked children too).
func startProc(dir, name, bin string, args ...string) (*proc, error) {
	if _, err := exec.LookPath(bin); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	log, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s log: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{cmd: cmd, log: log, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(p.exited) }()
	return p, nil
}

func (p *proc) pid() int {
	if p == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// stop sends SIGTERM to the group, SIGKILL after 3 s, and reaps the leader;
// it then makes sure the group is empty.
func (p *proc) stop() error {
	if p == nil {
		return nil
	}
	pgid := p.cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(3 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.exited
	}
	syscall.Kill(-pgid, syscall.SIGKILL) // forks that outlived their parent
	p.log.Close()
	return nil
}

// waitListening dials addr until it accepts, or the process dies. Through
// the TCP relay, probe a console that sends nothing unasked (echo).
func waitListening(ctx context.Context, p *proc, addr string) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.exited:
			return errors.New("exited before listening")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return fmt.Errorf("not listening on %s after 15s", addr)
}

// waitServed holds a connection to addr until the proxy has connected it
// to b's console (b accepted one more connection), or the process exits,
// or 15 s pass.
func waitServed(ctx context.Context, p *proc, addr string, b *Backend) error {
	before := b.accepted.Load()
	deadline := time.Now().Add(15 * time.Second)
	var c net.Conn
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for time.Now().Before(deadline) {
		if c == nil {
			c, _ = net.DialTimeout("tcp", addr, 200*time.Millisecond)
		}
		if c != nil && b.accepted.Load() > before {
			return nil
		}
		select {
		case <-p.exited:
			return errors.New("exited before serving")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not served after 15s", addr)
}

// freePort asks the kernel for an unused loopback port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// wsEndpoint is the endpoint of a WebSocket proxy on one port.
func wsEndpoint(port int) Endpoint {
	a := addr4(port)
	ep := Endpoint{WebSocket: true, Host: a.String(), Path: tokenPath}
	for m := range numModes {
		ep.Addrs[m] = a
	}
	return ep
}

func addr4(port int) *net.TCPAddr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1).To4(), Port: port} }
