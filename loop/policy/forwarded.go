package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ErrForwardedConflict means a trusted peer sent forwarding headers that
// disagree about the client's scheme; the caller answers 400.
var ErrForwardedConflict = errors.New("conflicting forwarding headers")

// TrustedProxies is the parsed --trusted-proxies list. Only peers inside it
// may tell the proxy the client's scheme and address.
type TrustedProxies struct{ nets []netip.Prefix }

// ParseTrustedProxies parses comma-separated CIDRs or bare addresses (a bare
// address is /32 or /128). Errors name the entry's position.
func ParseTrustedProxies(s string) (TrustedProxies, error) {
	var t TrustedProxies
	for i, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			bits := p.Bits()
			if p.Addr().Is4In6() {
				bits -= 96
			}
			if bits < 0 {
				return TrustedProxies{}, fmt.Errorf("trusted-proxies entry %d: a 4-in-6 prefix shorter than /96", i+1)
			}
			t.nets = append(t.nets, netip.PrefixFrom(p.Addr().Unmap(), bits).Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return TrustedProxies{}, fmt.Errorf("trusted-proxies entry %d: not a CIDR or address", i+1)
		}
		a = a.Unmap()
		t.nets = append(t.nets, netip.PrefixFrom(a, a.BitLen()))
	}
	return t, nil
}

// Contains reports whether a (4-in-6 addresses unmapped) is trusted.
func (t TrustedProxies) Contains(a netip.Addr) bool {
	a = a.Unmap()
	for _, n := range t.nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// ClientView returns how the client reached us: secure (https from the
// client's point of view) and its address for logs. Forwarding headers count
// only when the peer is trusted; otherwise they are ignored (secure = tls,
// client = peer). From a trusted peer, X-Forwarded-Proto (its last value: the
// one the nearest proxy set) or Forwarded's proto= (RFC 7239, last element)
// decide the scheme, and they must agree if both are present; the client is
// the rightmost untrusted address of Forwarded's for= (or else
// X-Forwarded-For). Unparsable addresses leave the client at the peer.
func (t TrustedProxies) ClientView(peer netip.Addr, tls bool, xfProto, xfFor, forwarded [][]byte) (secure bool, client netip.Addr, err error) {
	peer = peer.Unmap()
	if !t.Contains(peer) {
		return tls, peer, nil
	}
	elems := forwardedElements(forwarded)
	fProto := ""
	if len(elems) > 0 {
		fProto = elems[len(elems)-1]["proto"]
	}
	xProto := lastListValue(xfProto)
	if fProto != "" && xProto != "" && !strings.EqualFold(fProto, xProto) {
		return false, peer, ErrForwardedConflict
	}
	proto := fProto
	if proto == "" {
		proto = xProto
	}
	secure = tls
	switch strings.ToLower(proto) {
	case "":
	case "https", "wss":
		secure = true
	case "http", "ws":
		secure = false
	default:
		return false, peer, fmt.Errorf("%w: unknown proto", ErrForwardedConflict)
	}
	var fors []string
	if len(elems) > 0 {
		for _, e := range elems {
			fors = append(fors, e["for"])
		}
	} else {
		for _, h := range xfFor {
			for _, v := range strings.Split(string(h), ",") {
				fors = append(fors, strings.TrimSpace(v))
			}
		}
	}
	return secure, t.rightmostUntrusted(peer, fors), nil
}

// rightmostUntrusted walks the hop list from the right, skipping trusted
// proxies.
func (t TrustedProxies) rightmostUntrusted(peer netip.Addr, hops []string) netip.Addr {
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseNode(hops[i])
		if !ok {
			return client
		}
		client = a
		if !t.Contains(a) {
			return a
		}
	}
	return client
}

// parseNode parses a node of X-Forwarded-For or Forwarded for= (RFC 7239
// §6): an IPv4 address, "[IPv6]" with an optional port, either optionally
// with ":port". "unknown" and obfuscated names do not parse.
func parseNode(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// lastListValue returns the last element of comma-separated header values.
func lastListValue(hs [][]byte) string {
	if len(hs) == 0 {
		return ""
	}
	v := string(hs[len(hs)-1])
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return strings.TrimSpace(v)
}

// forwardedElements parses Forwarded headers (RFC 7239 §4) into elements of
// lowercase parameter names to values (quotes removed). Commas and
// semicolons inside quoted strings do not split.
func forwardedElements(hs [][]byte) []map[string]string {
	var out []map[string]string
	for _, h := range hs {
		for _, elem := range splitQuoted(string(h), ',') {
			m := map[string]string{}
			for _, pair := range splitQuoted(elem, ';') {
				k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
				if !ok {
					continue
				}
				v = strings.TrimSpace(v)
				if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
					v = strings.ReplaceAll(v[1:len(v)-1], `\"`, `"`)
				}
				m[strings.ToLower(strings.TrimSpace(k))] = v
			}
			out = append(out, m)
		}
	}
	return out
}

// splitQuoted splits s at sep outside double quotes (backslash escapes).
func splitQuoted(s string, sep byte) []string {
	var out []string
	start, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == sep && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}
