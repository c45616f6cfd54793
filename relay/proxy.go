//go:build linux

package relay

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"strings"
)

// ForwardProxy is --compute-proxy: compute hosts are reached through this
// HTTP proxy with `CONNECT ip:port` (authority form).
type ForwardProxy struct {
	Addr string // host:port of the proxy
	Auth string // the Proxy-Authorization value, or ""
}

// ParseForwardProxy parses http://HOST:PORT; authFile, if given, holds
// "user:password" for Basic authentication.
func ParseForwardProxy(raw, authFile string) (*ForwardProxy, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Host == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") || u.User != nil || u.RawQuery != "" {
		return nil, errors.New("--compute-proxy must be http://HOST:PORT (credentials go in --compute-proxy-auth-file)")
	}
	p := &ForwardProxy{Addr: u.Host}
	if authFile != "" {
		b, err := os.ReadFile(authFile)
		if err != nil {
			return nil, fmt.Errorf("--compute-proxy-auth-file: %w", err)
		}
		cred := strings.TrimSpace(string(b))
		if !strings.Contains(cred, ":") || strings.ContainsAny(cred, "\r\n") {
			return nil, errors.New("--compute-proxy-auth-file must hold user:password on one line")
		}
		p.Auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(cred))
	}
	return p, nil
}

// AppendProxyConnect appends to dst the authority-form request
// `CONNECT ip:port HTTP/1.1` (RFC 9112 §3.2.3; an IPv6 address in brackets)
// with Host naming the same authority and, when set, Proxy-Authorization,
// then the blank line; it returns the extended slice. An address's zone is
// dropped: it means nothing to the proxy, and netip accepts any bytes in it.
func (p *ForwardProxy) AppendProxyConnect(dst []byte, target netip.AddrPort) []byte {
	target = netip.AddrPortFrom(target.Addr().WithZone(""), target.Port())
	dst = append(dst, "CONNECT "...)
	dst = target.AppendTo(dst)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	dst = target.AppendTo(dst)
	if p.Auth != "" {
		dst = append(dst, "\r\nProxy-Authorization: "...)
		dst = append(dst, p.Auth...)
	}
	return append(dst, "\r\n\r\n"...)
}
