package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DialConfig says how to reach compute hosts.
type DialConfig struct {
	// Timeout bounds DNS plus TCP connect (and, later, any CONNECT handshake).
	Timeout time.Duration
	// Allowed, when not empty, is the only set of networks the proxy may
	// connect to; every address a name resolves to must be inside.
	Allowed []netip.Prefix
	// KeepAlive is the TCP keepalive idle time toward hosts; 0 means 30s.
	KeepAlive time.Duration
	// Resolver resolves host names; nil means net.DefaultResolver.
	Resolver *net.Resolver
	// Proxy, when set, is the forward HTTP proxy compute hosts are reached
	// through (--compute-proxy).
	Proxy *ForwardProxy
	// Deny is the proxy's own listeners, never connected to whatever
	// Allowed says (a token must not turn the proxy on itself). An
	// unspecified address (0.0.0.0, ::) stands for every loopback address
	// too; the caller lists this machine's other addresses.
	Deny []netip.AddrPort
}

// Errors callers branch on (each is a distinct result in the metrics).
var (
	ErrTargetRefused = errors.New("compute host outside allowed targets")
	ErrUnreachable   = errors.New("compute host unreachable")
	errOwnListener   = fmt.Errorf("%w: one of the proxy's own listeners", ErrTargetRefused)
)

// Dial resolves host (with the timeout), checks every resolved address
// against Allowed, and connects to the first that answers, with TCP
// no-delay and keepalive. Blocking: call it off the event loop.
func Dial(ctx context.Context, host string, port int, cfg DialConfig) (*net.TCPConn, error) {
	ctx, cancel := cfg.bound(ctx)
	defer cancel()
	addrs, err := resolveAllowed(ctx, host, port, cfg)
	if err != nil {
		return nil, err
	}
	keep := cfg.KeepAlive
	if keep <= 0 {
		keep = 30 * time.Second
	}
	d := net.Dialer{
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: keep, Interval: keep / 3, Count: 3},
		// Checked again on the exact address dialed: defence in depth.
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !allowed(ap.Addr(), cfg.Allowed) || Denied(ap, cfg.Deny) {
				return ErrTargetRefused
			}
			return nil
		},
	}
	var last error
	for _, a := range addrs {
		c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(a, uint16(port)).String())
		if err == nil {
			tc := c.(*net.TCPConn)
			_ = tc.SetNoDelay(true)
			return tc, nil
		}
		if errors.Is(err, ErrTargetRefused) {
			return nil, ErrTargetRefused
		}
		last = err
	}
	return nil, fmt.Errorf("%w: %v", ErrUnreachable, last)
}

// bound is ctx within Timeout, when set.
func (cfg DialConfig) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if cfg.Timeout > 0 {
		return context.WithTimeout(ctx, cfg.Timeout)
	}
	return ctx, func() {}
}

// resolveAllowed resolves host and checks every address against Allowed
// and, with port, Deny: ErrUnreachable if it does not resolve,
// ErrTargetRefused if any address is outside or one of the proxy's own.
func resolveAllowed(ctx context.Context, host string, port int, cfg DialConfig) ([]netip.Addr, error) {
	addrs, err := resolve(ctx, host, cfg.Resolver)
	if err != nil {
		return nil, fmt.Errorf("%w: resolve: %v", ErrUnreachable, err)
	}
	for _, a := range addrs {
		if !allowed(a, cfg.Allowed) {
			return nil, ErrTargetRefused
		}
		if Denied(netip.AddrPortFrom(a, uint16(port)), cfg.Deny) {
			return nil, errOwnListener
		}
	}
	return addrs, nil
}

// Denied reports whether ap reaches one of the listeners in deny: the same
// address and port; or the port of a listener on an unspecified address,
// from a loopback address; or any listener's port, from an unspecified
// address (connecting to 0.0.0.0 or :: reaches this machine).
func Denied(ap netip.AddrPort, deny []netip.AddrPort) bool {
	a := ap.Addr().Unmap()
	for _, d := range deny {
		if d.Port() != ap.Port() {
			continue
		}
		da := d.Addr().Unmap()
		if da == a || a.IsUnspecified() || da.IsUnspecified() && a.IsLoopback() {
			return true
		}
	}
	return false
}

func resolve(ctx context.Context, host string, r *net.Resolver) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a.Unmap()}, nil
	}
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, err
	}
	if len(addrs) == 0 {
		return nil, errors.New("no addresses")
	}
	for i := range addrs {
		addrs[i] = addrs[i].Unmap()
	}
	return addrs, nil
}

func allowed(a netip.Addr, nets []netip.Prefix) bool {
	if len(nets) == 0 {
		return true
	}
	a = a.Unmap()
	for _, n := range nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// ParseTargets parses --allowed-targets: comma-separated CIDRs or bare
// addresses. Errors name the entry's position.
func ParseTargets(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, f := range splitList(s) {
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("allowed-targets entry %d: not a CIDR or address", i+1)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for f := range splitSeq(s) {
		out = append(out, f)
	}
	return out
}

// Detach takes the socket out of c as a non-blocking, close-on-exec fd the
// caller owns, and closes c.
func Detach(c *net.TCPConn) (int, error) {
	defer c.Close()
	raw, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := raw.Control(func(s uintptr) {
		fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, fmt.Errorf("dup: %w", derr)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// StartConnect resolves host within cfg.Timeout, checks every address
// against Allowed and, when host has one address (an IP literal, as Nova
// stores it), opens a non-blocking socket with no-delay and keepalive and
// starts connecting: Relay.Connect completes the connect on a poller, so no
// goroutine waits for the compute host. ok is false for a name with several
// addresses (or an IPv6 zone): Dial tries them in turn, blocking.
func StartConnect(ctx context.Context, host string, port int, cfg DialConfig) (fd int, ok bool, err error) {
	ctx, cancel := cfg.bound(ctx)
	defer cancel()
	addrs, err := resolveAllowed(ctx, host, port, cfg)
	if err != nil {
		return -1, true, err
	}
	if len(addrs) != 1 || addrs[0].Zone() != "" {
		return -1, false, nil
	}
	fd, err = connectNonblocking(netip.AddrPortFrom(addrs[0], uint16(port)), cfg.KeepAlive)
	return fd, true, err
}

// connectNonblocking opens the socket and issues connect; EINPROGRESS is
// the normal outcome.
func connectNonblocking(ap netip.AddrPort, keep time.Duration) (int, error) {
	if keep <= 0 {
		keep = 30 * time.Second
	}
	family := unix.AF_INET6
	var sa unix.Sockaddr = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	if ap.Addr().Is4() {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return -1, fmt.Errorf("%w: socket: %v", ErrUnreachable, err)
	}
	secs := int(max(keep/time.Second, 1))
	for _, o := range []struct{ level, name, value int }{
		{unix.IPPROTO_TCP, unix.TCP_NODELAY, 1},
		{unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, secs},
		{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, max(secs/3, 1)},
		{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 3},
	} {
		_ = unix.SetsockoptInt(fd, o.level, o.name, o.value)
	}
	err = unix.Connect(fd, sa)
	for errors.Is(err, unix.EINTR) {
		err = unix.Connect(fd, sa) // the connect goes on; a repeat reports its state
	}
	if err != nil && !errors.Is(err, unix.EINPROGRESS) && !errors.Is(err, unix.EALREADY) {
		unix.Close(fd)
		return -1, fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	return fd, nil
}
