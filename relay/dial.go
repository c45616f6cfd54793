//go:build linux

package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	gio "github.com/panjf2000/gnet/v2/pkg/io"
	"golang.org/x/sys/unix"
)

// DialConfig says how to reach compute hosts.
type DialConfig struct {
	// Timeout bounds DNS plus TCP connect (and, later, any CONNECT exchange).
	Timeout time.Duration
	// Allowed, when not empty, is the only set of networks the proxy may
	// connect to; every address a name resolves to must be inside.
	Allowed []netip.Prefix
	// KeepAlive is the TCP keepalive idle time toward hosts; 0 means 30s.
	KeepAlive time.Duration
	// Resolver resolves host names; nil means net.DefaultResolver. Tests
	// give names several addresses through it.
	Resolver Resolver
	// Proxy, when set, is the forward HTTP proxy compute hosts are reached
	// through (--compute-proxy).
	Proxy *ForwardProxy
	// Deny is the proxy's own listeners, never connected to whatever
	// Allowed says (a token must not turn the proxy on itself). An
	// unspecified address (0.0.0.0, ::) stands for every loopback address
	// too; the caller lists this machine's other addresses.
	Deny []netip.AddrPort
}

// Resolver looks names up; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Errors callers branch on (each is a distinct result in the metrics).
var (
	ErrTargetRefused = errors.New("compute host outside allowed targets")
	ErrUnreachable   = errors.New("compute host unreachable")
	errOwnListener   = fmt.Errorf("%w: one of the proxy's own listeners", ErrTargetRefused)
)

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

func resolve(ctx context.Context, host string, r Resolver) ([]netip.Addr, error) {
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
		gio.Close(fd)
		return -1, err
	}
	return fd, nil
}

// minAttempt is the least time an address of a name with several gets
// before the next is tried, unless the overall deadline is nearer: a SYN
// lost once is sent again after a second (RFC 6298's initial RTO), so each
// address has room for one retransmission. Go's net.Dialer uses the same
// floor for the same reason.
const minAttempt = 2 * time.Second

// route is where a session's connect goes, as resolveRoute found it: the
// addresses a relay poller connects to in turn (the compute host's, or the
// forward proxy's), and the forward proxy's CONNECT request if there is one.
// Only resolveRoute makes a route, after checking every compute-host address
// against Allowed.
type route struct {
	addrs []netip.AddrPort
	keep  time.Duration
	proxy []byte
}

// viaProxy reports whether the route goes through --compute-proxy: the
// exchange's first CONNECT request (step 0) is then the forward proxy's.
func (rt route) viaProxy() bool { return rt.proxy != nil }

// resolveRoute is the part of Open that may block, for a worker: it
// resolves host within cfg.Timeout and checks every address against Allowed
// (ErrTargetRefused: no socket is opened for a refused name), and with a
// forward proxy resolves the proxy's address as well. ErrUnreachable means a
// name did not resolve. The connects themselves run on a relay poller
// (openRoute), so no goroutine waits for a SYN's answer.
func resolveRoute(ctx context.Context, host string, port int, cfg DialConfig) (route, error) {
	if ResolveBlocks(host, cfg) { // an IP address needs no deadline: no timer per handshake
		var cancel context.CancelFunc
		ctx, cancel = cfg.bound(ctx)
		defer cancel()
	}
	addrs, err := resolveAllowed(ctx, host, port, cfg)
	if err != nil {
		return route{}, err
	}
	rt := route{keep: cfg.KeepAlive}
	if rt.keep <= 0 {
		rt.keep = 30 * time.Second
	}
	if cfg.Proxy == nil {
		for _, a := range addrs {
			if a, err = numericZone(a); err != nil {
				return route{}, fmt.Errorf("%w: %v", ErrUnreachable, err)
			}
			rt.addrs = append(rt.addrs, netip.AddrPortFrom(a, uint16(port)))
		}
		return rt, nil
	}
	// The forward proxy connects to the compute host; it is told the first
	// address (every one was checked above).
	rt.proxy = cfg.Proxy.AppendProxyConnect(nil, netip.AddrPortFrom(addrs[0], uint16(port)))
	if rt.addrs, err = resolveProxy(ctx, cfg); err != nil {
		return route{}, err
	}
	return rt, nil
}

// ResolveBlocks reports whether resolveRoute may wait on a DNS lookup: host is
// not an IP address, or a forward proxy's address is to be resolved. When
// it does not, resolveRoute never uses its ctx, and a caller need not make one
// with a deadline.
func ResolveBlocks(host string, cfg DialConfig) bool {
	if cfg.Proxy != nil {
		return true
	}
	_, err := netip.ParseAddr(host)
	return err != nil
}

// resolveProxy resolves the forward proxy's host:port; its addresses are
// the operator's choice, so Allowed does not apply to them.
func resolveProxy(ctx context.Context, cfg DialConfig) ([]netip.AddrPort, error) {
	h, ps, err := net.SplitHostPort(cfg.Proxy.Addr)
	if err != nil {
		return nil, fmt.Errorf("%w: forward proxy address: %v", ErrUnreachable, err)
	}
	port, err := strconv.ParseUint(ps, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("%w: forward proxy port: %v", ErrUnreachable, err)
	}
	addrs, err := resolve(ctx, h, cfg.Resolver)
	if err != nil {
		return nil, fmt.Errorf("%w: forward proxy: resolve: %v", ErrUnreachable, err)
	}
	out := make([]netip.AddrPort, 0, len(addrs))
	for _, a := range addrs {
		if a, err = numericZone(a); err != nil {
			return nil, fmt.Errorf("%w: forward proxy: %v", ErrUnreachable, err)
		}
		out = append(out, netip.AddrPortFrom(a, uint16(port)))
	}
	return out, nil
}

// numericZone gives an IPv6 address's zone as the interface's index, so
// the poller needs no lookup to connect to it.
func numericZone(a netip.Addr) (netip.Addr, error) {
	z := a.Zone()
	if z == "" {
		return a, nil
	}
	if _, err := strconv.ParseUint(z, 10, 32); err == nil {
		return a, nil
	}
	ifi, err := net.InterfaceByName(z)
	if err != nil {
		return a, fmt.Errorf("zone %q: %v", z, err)
	}
	return a.WithZone(strconv.Itoa(ifi.Index)), nil
}

// attemptDeadline is when the connect to one of left addresses still to
// try (this one included) gives way to the next: an equal share of the
// time to the overall deadline, at least minAttempt, at most all of it.
func attemptDeadline(now, deadline time.Time, left int) time.Time {
	remaining := deadline.Sub(now)
	share := remaining / time.Duration(max(left, 1))
	if share < minAttempt {
		share = min(minAttempt, remaining)
	}
	return now.Add(share)
}

// keepProbes is how many unanswered keepalive probes end a host socket
// that has no TCP_USER_TIMEOUT (connectNonblocking).
const keepProbes = 3

// connectNonblocking opens a non-blocking socket with no-delay and
// keepalive and issues connect; EINPROGRESS is the normal outcome. The
// keepalive's probe count (TCP_KEEPCNT) is set only with countProbes: a
// socket that gets TCP_USER_TIMEOUT (Relay.Attach, with a write timeout)
// has the kernel end it once that time passed with a probe unanswered, and
// never consult the count (tcp_keepalive_timer), so the system call would
// change nothing.
func connectNonblocking(ap netip.AddrPort, keep time.Duration, countProbes bool) (int, error) {
	// A zone is parsed only where there is one (ParseUint's error on "" was
	// a handshake's garbage).
	family, zone := unix.AF_INET, uint64(0)
	if !ap.Addr().Is4() {
		family = unix.AF_INET6
		if z := ap.Addr().Zone(); z != "" {
			zone, _ = strconv.ParseUint(z, 10, 32) // numeric: resolveRoute made it so
		}
	}
	fd, err := rawSocket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return -1, fmt.Errorf("%w: socket: %v", ErrUnreachable, err)
	}
	secs := int(max(keep/time.Second, 1))
	opts := [...]struct{ level, name, value int }{
		{unix.IPPROTO_TCP, unix.TCP_NODELAY, 1},
		{unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, secs},
		{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, max(secs/3, 1)},
		{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, keepProbes}, // last: dropped without countProbes
	}
	set := opts[:]
	if !countProbes {
		set = opts[:len(opts)-1]
	}
	for _, o := range set {
		_ = rawSetsockoptInt(fd, o.level, o.name, o.value)
	}
	err = rawConnect(fd, ap, uint32(zone))
	for errors.Is(err, unix.EINTR) {
		err = rawConnect(fd, ap, uint32(zone)) // the connect goes on; a repeat reports its state
	}
	if err != nil && !errors.Is(err, unix.EINPROGRESS) && !errors.Is(err, unix.EALREADY) {
		_ = gio.Close(fd)
		return -1, fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	return fd, nil
}
