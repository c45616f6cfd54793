package bench

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// procTarget is the PID and Stop of a target that is one process group;
// Stop also removes the run's token file (tokens do not outlive their run).
type procTarget struct {
	p      *proc
	tokens string
}

func (t *procTarget) PID() int { return t.p.pid() }

func (t *procTarget) Stop() error {
	err := t.p.stop()
	if t.tokens != "" {
		os.Remove(t.tokens)
	}
	return err
}

// consoleproxyTarget starts our proxy with a token file it writes.
type consoleproxyTarget struct {
	procTarget
	bin  string
	args []string
}

func (t *consoleproxyTarget) Start(ctx context.Context, spec RunSpec) (Endpoint, error) {
	file := filepath.Join(spec.Dir, "consoleproxy-tokens.jsonl")
	t.tokens = file
	exp := time.Now().Add(24 * time.Hour).Unix()
	err := writeLines(file, len(spec.Tokens), func(i int) string {
		sum := sha256.Sum256([]byte(tokenName(i)))
		a := spec.Backend.Addr(spec.Tokens[i])
		return fmt.Sprintf(`{"token_hash":"%s","console_type":"novnc","host":"127.0.0.1","port":%d,`+
			`"internal_access_path":null,"instance_uuid":"00000000-0000-4000-8000-%012d","access_url_base":"","expires":%d}`,
			hex.EncodeToString(sum[:]), a.Port, i, exp)
	})
	if err != nil {
		return Endpoint{}, err
	}
	metrics, metricsURL := "", ""
	if spec.Metrics {
		port, err := freePort()
		if err != nil {
			return Endpoint{}, err
		}
		metrics = fmt.Sprintf("127.0.0.1:%d", port)
		metricsURL = "http://" + metrics + "/metrics"
	}
	ep, err := startWS(ctx, &t.p, spec.Dir, "consoleproxy", t.bin, func(addr string) []string {
		args := []string{"--listen", addr, "--metrics-listen", metrics, "--admin-listen", "",
			"--token-store", "file:" + file}
		if spec.TLS != nil {
			args = append(args, "--cert", spec.TLS.Cert, "--key", spec.TLS.Key)
		}
		return append(args, t.args...)
	})
	if err != nil {
		return ep, err
	}
	ep.MetricsURL = metricsURL
	if spec.TLS != nil {
		ep = ep.withTLS()
	}
	return ep, nil
}

// websockifyTarget starts Debian's websockify with its TokenFile plugin.
type websockifyTarget struct {
	procTarget
	bin string
}

func (t *websockifyTarget) Start(ctx context.Context, spec RunSpec) (Endpoint, error) {
	file := filepath.Join(spec.Dir, "websockify-tokens.txt")
	t.tokens = file
	err := writeLines(file, len(spec.Tokens), func(i int) string {
		return fmt.Sprintf("%s: 127.0.0.1:%d", tokenName(i), spec.Backend.Addr(spec.Tokens[i]).Port)
	})
	if err != nil {
		return Endpoint{}, err
	}
	ep, err := startWS(ctx, &t.p, spec.Dir, "websockify", t.bin, func(addr string) []string {
		args := []string{"--token-plugin", "TokenFile", "--token-source", file}
		if spec.TLS != nil {
			args = append(args, "--cert", spec.TLS.Cert, "--key", spec.TLS.Key)
		}
		return append(args, addr)
	})
	if err == nil && spec.TLS != nil {
		ep = ep.withTLS()
	}
	return ep, err
}

// startWS starts a WebSocket proxy on a free port and waits for it to listen.
func startWS(ctx context.Context, p **proc, dir, name, bin string, args func(addr string) []string) (Endpoint, error) {
	port, err := freePort()
	if err != nil {
		return Endpoint{}, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	*p, err = startProc(dir, name, bin, args(addr)...)
	if err != nil {
		return Endpoint{}, err
	}
	if err := waitListening(ctx, *p, addr); err != nil {
		(*p).stop()
		return Endpoint{}, fmt.Errorf("%s: %w (see %s.log)", name, err, filepath.Join(dir, name))
	}
	return wsEndpoint(port), nil
}

// haproxyTarget is the reference: haproxy in TCP mode, one frontend per
// console mode, reached with plain TCP.
type haproxyTarget struct {
	procTarget
	bin string
}

// haproxyStarts bounds the attempts at starting haproxy. Its listeners'
// ports are picked free (freePort) before it binds them, and on a busy
// machine one may be taken in between: haproxy then exits after binding the
// others, and a fresh set of ports is tried.
const haproxyStarts = 3

func (t *haproxyTarget) Start(ctx context.Context, spec RunSpec) (Endpoint, error) {
	var err error
	for range haproxyStarts {
		var ep Endpoint
		if ep, err = t.start(ctx, spec); err == nil || ctx.Err() != nil {
			return ep, err
		}
	}
	return Endpoint{}, err
}

func (t *haproxyTarget) start(ctx context.Context, spec RunSpec) (Endpoint, error) {
	var ep Endpoint
	var b strings.Builder
	// The fin timeouts bound a side left half closed by its peer. A client
	// that resets while haproxy still holds its bytes for a host that is not
	// reading (an echo console blocked writing back: pong-flood's
	// reference) is held until the server timeout: hostile runs ask for a
	// short one (RunSpec.IdleTimeout).
	idle := "1h"
	if spec.IdleTimeout > 0 {
		idle = fmt.Sprintf("%dms", spec.IdleTimeout.Milliseconds())
	}
	global := "  maxconn 9500\n"
	if spec.TLS != nil {
		// No session cache (and no tickets, on the binds below): every TLS
		// handshake is a full one whatever the client does. haproxy prefers
		// its own TLS 1.3 suite order, AES-256 first; AES-128 first is what
		// Go's server picks for a Go client, so both targets seal alike.
		global += "  tune.ssl.cachesize 0\n" +
			"  ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256\n"
	}
	fmt.Fprintf(&b, "global\n"+global+"defaults\n  mode tcp\n  maxconn 9500\n"+
		"  timeout connect 5s\n  timeout client %[1]s\n  timeout server %[1]s\n"+
		"  timeout client-fin 2s\n  timeout server-fin 2s\n", idle)
	for m := range numModes {
		port, err := freePort()
		if err != nil {
			return ep, err
		}
		ep.Addrs[m] = addr4(port)
		fmt.Fprintf(&b, "listen %s\n  bind 127.0.0.1:%d\n  server s 127.0.0.1:%d\n",
			Mode(m), port, spec.Backend.Addr(Mode(m)).Port)
	}
	if spec.TLS != nil {
		// TLS terminated in front of each console (tls-silent's and the TLS
		// scenarios' reference).
		for m := range numModes {
			port, err := freePort()
			if err != nil {
				return ep, err
			}
			ep.TLSAddrs[m] = addr4(port)
			fmt.Fprintf(&b, "listen tls-%s\n  bind 127.0.0.1:%d ssl crt %s no-tls-tickets\n  server s 127.0.0.1:%d\n",
				Mode(m), port, spec.TLS.Combined, spec.Backend.Addr(Mode(m)).Port)
		}
		ep.TLSAddr = ep.TLSAddrs[ModeEcho]
	}
	cfg := filepath.Join(spec.Dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		return ep, fmt.Errorf("haproxy config: %w", err)
	}
	var err error
	if t.p, err = startProc(spec.Dir, "haproxy", t.bin, "-db", "-f", cfg); err != nil {
		return ep, err
	}
	// haproxy binds every listener before it serves any, and exits when a
	// bind fails, perhaps after the kernel queued a probe on a listener bound
	// before: so the probe on the echo console (which sends nothing unasked)
	// waits until haproxy served it, which tells for all.
	if err := waitServed(ctx, t.p, ep.Addrs[ModeEcho].String(), spec.Backend); err != nil {
		t.p.stop()
		return ep, fmt.Errorf("haproxy: %w (see %s)", err, filepath.Join(spec.Dir, "haproxy.log"))
	}
	return ep, nil
}

// writeLines writes n lines, line(i) each, to path.
func writeLines(path string, n int, line func(i int) string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	w := bufio.NewWriter(f)
	for i := range n {
		w.WriteString(line(i))
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("token file: %w", err)
	}
	return f.Close()
}
