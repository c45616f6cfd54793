package rfb

import (
	"crypto/tls"
	"sync"
	"sync/atomic"
)

// MaxHostConfigs is the most compute hosts whose TLS client configuration
// (0.5 KiB each) is kept for their next handshakes. A tls.Conn keeps its
// configuration for its whole life, so one clone per session cost every
// idle VeNCrypt session 0.5 KiB of heap (about 1 KiB of RSS); sessions to
// the same host now share one. Past the cap (more compute hosts than
// that behind one proxy) a handshake clones its own, as before.
const MaxHostConfigs = 4096

// clientTLS is the TLS client configuration of one Reload: the files'
// certificates, and the configurations built from them per host.
type clientTLS struct {
	base   *tls.Config
	shared *tls.Config // with SkipHostname: the same for every host
	hosts  sync.Map    // host → *tls.Config naming it
	n      atomic.Int32
}

func newClientTLS(base *tls.Config, skipHostname bool) *clientTLS {
	c := &clientTLS{base: base}
	if skipHostname {
		cfg := base.Clone()
		cfg.InsecureSkipVerify = true // the chain is still checked, below
		cfg.VerifyConnection = func(cs tls.ConnectionState) error { return verifyChain(cs, cfg.RootCAs) }
		c.shared = cfg
	}
	return c
}

// forHost is the configuration for a handshake with host; it must not be
// modified.
func (c *clientTLS) forHost(host string) *tls.Config {
	if c.shared != nil {
		return c.shared
	}
	if cfg, ok := c.hosts.Load(host); ok {
		return cfg.(*tls.Config)
	}
	cfg := c.base.Clone()
	cfg.ServerName = host
	if c.n.Add(1) > MaxHostConfigs {
		c.n.Add(-1)
		return cfg
	}
	if old, loaded := c.hosts.LoadOrStore(host, cfg); loaded {
		c.n.Add(-1)
		return old.(*tls.Config)
	}
	return cfg
}
