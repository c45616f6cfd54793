package admin

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/consoleproxy/consoleproxy/relay"
	"github.com/consoleproxy/consoleproxy/relay/tokens"
)

// MaxTTL caps ttl_seconds: a day (tokens.MaxTTL). Nova's own token_ttl
// defaults to 10 minutes; a console URL valid for longer than a day is a
// standing credential, not a console link.
const MaxTTL = tokens.MaxTTL

// fieldError is an invalid field of a mint: its name and a fixed reason,
// never the value (a value may be a secret pasted by mistake, and these
// reasons reach the logs and the answer).
type fieldError struct{ field, reason string }

// check validates a mint body field by field and builds the store's
// request; the first invalid field is returned.
func (a *API) check(b *mintWire) (tokens.MintRequest, *fieldError) {
	if b.ConsoleType == "" {
		b.ConsoleType = a.cfg.ConsoleType
	}
	switch {
	case b.ConsoleType != a.cfg.ConsoleType:
		return tokens.MintRequest{}, &fieldError{"console_type", "must be " + a.cfg.ConsoleType + ", the console type this proxy serves"}
	case !validHost(b.Host):
		return tokens.MintRequest{}, &fieldError{"host", "must be an IP address or a DNS name"}
	case b.Port < 1 || b.Port > 65535:
		return tokens.MintRequest{}, &fieldError{"port", "must be 1 to 65535"}
	case ownListener(b.Host, b.Port, a.cfg.Own):
		return tokens.MintRequest{}, &fieldError{"host", errOwnListener.Error()}
	case !isUUID(b.InstanceUUID):
		return tokens.MintRequest{}, &fieldError{"instance_uuid", "must be a UUID (8-4-4-4-12 hex digits)"}
	case b.InternalAccessPath != nil && !relay.ValidAccessPath(*b.InternalAccessPath):
		return tokens.MintRequest{}, &fieldError{"internal_access_path", "must be null or a request target: /path[?query], URI characters only"}
	case !validAccessURLBase(b.AccessURLBase):
		return tokens.MintRequest{}, &fieldError{"access_url_base", "must be empty or an absolute http, https, ws or wss URL"}
	case b.TTLSeconds != nil && (*b.TTLSeconds <= 0 || *b.TTLSeconds > int64(MaxTTL/time.Second)):
		return tokens.MintRequest{}, &fieldError{"ttl_seconds", fmt.Sprintf("must be 1 to %d", int64(MaxTTL/time.Second))}
	}
	return tokens.MintRequest{
		ConsoleType: b.ConsoleType, Host: b.Host, Port: b.Port, InstanceUUID: b.InstanceUUID,
		InternalAccessPath: b.InternalAccessPath, AccessURLBase: b.AccessURLBase, TTL: ttl(b.TTLSeconds),
	}, nil
}

// errOwnListener refuses a mint whose host and port name one of the
// proxy's own listeners: a console there would be the proxy itself (its
// metrics, its admin API, its WebSocket port).
var errOwnListener = errors.New("host and port must not name one of the proxy's own listeners")

// validHost reports whether host is what the dialer accepts: an IP address
// without a zone or a DNS name (relay.AppendConnect's check, the one a
// CONNECT request line gets).
func validHost(host string) bool {
	_, err := relay.AppendConnect(nil, "/", host, 1)
	return err == nil
}

// isUUID reports whether s is a UUID in its canonical text form,
// 8-4-4-4-12 hex digits (either case), as Nova's instance_uuid.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
			continue
		}
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}

// validAccessURLBase: empty, or an absolute URL whose scheme Nova's
// Origin rule understands (http, https, ws, wss) and that has a host.
func validAccessURLBase(s string) bool {
	if s == "" {
		return true
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || len(s) > 2048 {
		return false
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https", "ws", "wss":
		return true
	}
	return false
}

// ownListener reports whether host:port reaches one of own: host an IP
// address, or localhost (the loopback addresses). Any other name is left to
// the connect, which checks every address it resolves to
// (relay.DialConfig.Deny).
func ownListener(host string, port int, own []netip.AddrPort) bool {
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		addrs = []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}
	}
	for _, a := range addrs {
		if relay.Denied(netip.AddrPortFrom(a, uint16(port)), own) {
			return true
		}
	}
	return false
}
