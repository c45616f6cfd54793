package tokens

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// outage reports a store's outage without flooding the log: at most one
// "unavailable" line per interval, with how many lookups failed since the
// previous one, and an "available again" line when a reported outage ends.
// Safe for concurrent use; a healthy store pays one atomic load per lookup.
type outage struct {
	log      *slog.Logger
	interval time.Duration
	now      func() time.Time
	name     string // what is down, for the message: "nova database", "redis token store", …
	attr     string // the log attribute naming the server: "database", "redis"
	what     string // the server, redacted (no password)

	down atomic.Bool // mirrors downLocked for the fast path of ok

	mu         sync.Mutex // guards the fields below
	downLocked bool
	reported   bool      // a line announced this outage
	since      time.Time // when it started
	last       time.Time // the last "unavailable" line
	failed     int       // lookups failed since the last line
}

// fail records a failed lookup; reason is safe to log.
func (o *outage) fail(reason string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.now()
	if !o.downLocked {
		o.downLocked, o.reported, o.since = true, false, now
		o.down.Store(true)
	}
	o.failed++
	if !o.last.IsZero() && now.Sub(o.last) < o.interval {
		return
	}
	o.log.Warn(o.name+" unavailable: lookups answer 503 until it is back", o.attr, o.what,
		"err", reason, "down_for", now.Sub(o.since).Round(time.Millisecond).String(), "failed_lookups", o.failed)
	o.last, o.failed, o.reported = now, 0, true
}

// ok records a successful query.
func (o *outage) ok() {
	if !o.down.Load() {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.downLocked {
		return
	}
	o.downLocked = false
	o.down.Store(false)
	if o.reported {
		o.log.Info(o.name+" available again", o.attr, o.what,
			"down_for", o.now().Sub(o.since).Round(time.Millisecond).String())
	}
}
