//go:build linux

package loop

import (
	"log/slog"
	"runtime"
	"time"

	"github.com/consoleproxy/consoleproxy/loop/policy"
	"github.com/consoleproxy/consoleproxy/relay"
	"github.com/consoleproxy/consoleproxy/relay/reuse"
	"github.com/consoleproxy/consoleproxy/relay/rfb"
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
	Reuse       reuse.Guard // nil means an exclusive in-process guard
	Dial        relay.DialConfig
	Relay       relay.Config // its Pollers and Driven are set by New: one poller per event loop, driven by it
	Request     wsframe.RequestLimits
	TLS         *TLSConfig // nil: plain ws:// only
	// Security is the RFB security proxy (VeNCrypt toward compute hosts);
	// nil leaves the RFB stream alone (Nova's auth_schemes = none). novnc only.
	Security *rfb.Proxy

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
	DrainTimeout          time.Duration // how long SIGTERM waits for sessions to close; default 10s
	// WriteTimeout closes a client or compute host that takes no byte for
	// this long while the proxy holds bytes for it; also both sockets'
	// TCP_USER_TIMEOUT. 0 means DefaultWriteTimeout; <0 turns it off.
	WriteTimeout time.Duration
	EventLoops   int // gnet loops; default one per core

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
	DefaultDrainTimeout     = 10 * time.Second
	DefaultWriteTimeout     = 30 * time.Second
	// controlHeld bounds the pongs and close frames queued for a client
	// beyond the host data the relay bounds (relay.Config.HighWater plus a
	// read): past it, reading the client's pings waits for its outbound
	// buffer to drain.
	controlHeld = 64 << 10
	// maxPeek bounds the client bytes parsed in one go, so a backlog held
	// back behind a slow host never becomes one giant slice.
	maxPeek = 64 << 10
	// MaxHeldUp bounds the client bytes one session holds toward its
	// compute host: at most one parsed batch the host has not taken (in
	// relay) plus one read of gnet's still unparsed (reading is paused
	// meanwhile, so TCP pushes the client back).
	MaxHeldUp = 2 * maxPeek
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
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.WriteTimeout > 0 && c.Relay.WriteTimeout == 0 {
		c.Relay.WriteTimeout = c.WriteTimeout
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
		c.Reuse = reuse.NewLocalGuard(reuse.Exclusive, c.Now)
	}
	return c
}
