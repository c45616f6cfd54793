package loop

import (
	"log/slog"
	"runtime"
	"time"

	"github.com/consoleproxy/consoleproxy/loop/policy"
	"github.com/consoleproxy/consoleproxy/relay"
	"github.com/consoleproxy/consoleproxy/relay/tokens"
	"github.com/consoleproxy/consoleproxy/wsframe"
)

// Config is everything a Server needs. Zero fields take the defaults noted;
// cmd/consoleproxy maps flags onto it.
type Config struct {
	Listen      string       // HOST:PORT of the WebSocket listener
	ConsoleType string       // the console_type this listener serves (novnc, serial, spice-html5)
	Store       tokens.Store // required
	Origins     policy.OriginPolicy
	Trusted     policy.TrustedProxies
	Reuse       policy.Guard // nil means an exclusive in-process guard
	Dial        relay.DialConfig
	Relay       relay.Config
	Request     wsframe.RequestLimits
	TLS         *TLSConfig // nil: plain ws:// only
	// Security is the RFB security proxy (VeNCrypt toward compute hosts);
	// nil leaves the RFB stream alone (Nova's auth_schemes = none). novnc only.
	Security *relay.SecurityProxy

	HandshakeTimeout      time.Duration // the upgrade must finish within this; default 10s
	IdleTimeout           time.Duration // no data either way for this long ends a session; 0 = off
	PingInterval          time.Duration // a ping to each client this often; 0 = default 30s; <0 = off
	EnforceSessionTimeout bool          // end a session when its token expires
	MaxSessions           int           // 0 = no cap (cmd/consoleproxy defaults it to SessionsForFDs)
	MaxPending            int           // connections in the upgrade or TLS handshake; 0 = DefaultMaxPending; <0 = no cap
	MaxSessionsPerIP      int           // sessions authorizing or relaying per client address; 0 = off
	AuthFailuresPerIP     int           // refused tokens per client address per minute, then 429; 0 = off
	Workers               int           // blocking-work goroutines; default 64
	Queue                 int           // handshakes waiting for a worker; default 1024
	MaxFrameSize          int64         // client frame payload cap; default wsframe.DefaultMaxFrameSize
	MaxMessageSize        int64         // client message cap; default wsframe.DefaultMaxMessageSize
	MaxClientBacklog      int           // client bytes held back while the host is slow; default 1 MiB
	DrainTimeout          time.Duration // how long SIGTERM waits for sessions to close; default 10s
	EventLoops            int           // gnet loops; default one per core

	Logger *slog.Logger     // nil means slog.Default()
	Now    func() time.Time // nil means time.Now
}

// Defaults for Config's zero fields.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultPingInterval     = 30 * time.Second
	DefaultWorkers          = 64
	DefaultQueue            = 1024
	DefaultMaxPending       = 1024
	DefaultMaxClientBacklog = 1 << 20
	DefaultDrainTimeout     = 10 * time.Second
	// maxPeek bounds the client bytes parsed in one go, so a backlog held
	// back behind a slow host never becomes one giant slice.
	maxPeek = 64 << 10
)

func (c Config) withDefaults() Config {
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.PingInterval == 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.Queue <= 0 {
		c.Queue = DefaultQueue
	}
	if c.MaxPending == 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.MaxClientBacklog <= 0 {
		c.MaxClientBacklog = DefaultMaxClientBacklog
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.EventLoops <= 0 {
		c.EventLoops = runtime.NumCPU()
	}
	if c.ConsoleType == "" {
		c.ConsoleType = "novnc"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Reuse == nil {
		c.Reuse = policy.NewLocalGuard(policy.ReuseExclusive, c.Now)
	}
	return c
}
