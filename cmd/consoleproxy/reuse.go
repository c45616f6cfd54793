package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/consoleproxy/consoleproxy/loop"
	"github.com/consoleproxy/consoleproxy/relay/reuse"
	"github.com/consoleproxy/consoleproxy/relay/tokens"
)

// isRedis reports whether spec is a redis:// or rediss:// URL.
func isRedis(spec string) bool {
	return strings.HasPrefix(spec, "redis://") || strings.HasPrefix(spec, "rediss://")
}

// reuseStore is where --token-reuse state lives: --reuse-store, else the
// --token-store when it is Redis, else "" (in process).
func reuseStore(o *options) (string, error) {
	switch {
	case o.reuseStore != "" && !isRedis(o.reuseStore):
		return "", errors.New("--reuse-store must be redis://… or rediss://…")
	case o.reuseStore != "":
		return o.reuseStore, nil
	case isRedis(o.tokenStore):
		return o.tokenStore, nil
	}
	return "", nil
}

// openReuse replaces cfg.Reuse (the in-process guard config made) with a
// Redis guard shared by the fleet when a Redis reuse store is configured:
// every policy, shared included, since revocations reach the fleet through
// it.
func (a *app) openReuse(o *options, cfg *loop.Config) error {
	spec, err := reuseStore(o)
	if err != nil || spec == "" {
		return err
	}
	p, err := reuse.ParsePolicy(o.tokenReuse)
	if err != nil {
		return err
	}
	u, err := tokens.ParseRedisURL(spec)
	if err != nil {
		return fmt.Errorf("--reuse-store: %w", err)
	}
	a.guard = tokens.OpenRedisGuard(tokens.RedisGuardConfig{URL: u, Policy: p, Lease: o.leaseTTL, Logger: a.log})
	cfg.Reuse = a.guard
	a.log.Info("token reuse: fleet-wide in redis", "redis", u.String(), "policy", p.String(),
		"lease", a.guard.Lease().String())
	return nil
}

// observeGuard exposes the fleet guard's losses: releases dropped with the
// queue full (their claims lapse with the lease), claims found taken by
// another session at renewal (a lease that lapsed while Redis was away),
// claims found gone at renewal and taken back (lapsed, or Redis lost them),
// and renewals that failed with their batch (retried at the next slot).
func (a *app) observeGuard() {
	if a.guard == nil {
		return
	}
	g := a.guard
	a.srv.Observe("consoleproxy_reuse_releases_dropped_total", func() float64 { return float64(g.Dropped()) })
	a.srv.Observe("consoleproxy_reuse_leases_lost_total", func() float64 { return float64(g.Lost()) })
	a.srv.Observe("consoleproxy_reuse_leases_lapsed_total", func() float64 { return float64(g.Lapsed()) })
	a.srv.Observe("consoleproxy_reuse_renewals_failed_total", func() float64 { return float64(g.RenewalsFailed()) })
}
