//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/internal/testutil/redistest"
	"github.com/consoleproxy/consoleproxy/loop"
	"github.com/consoleproxy/consoleproxy/relay/reuse"
	"github.com/consoleproxy/consoleproxy/relay/tokens"
)

// startRedis starts a redis-server for this test (password "" for none).
func startRedis(t *testing.T, password string) (*redistest.Server, *redis.Client) {
	t.Helper()
	srv, err := redistest.Start(password)
	if err != nil {
		testutil.Need(t, fmt.Errorf("redis-server: %w", err))
	}
	t.Cleanup(func() { _ = srv.Close() })
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr(), Password: password, DisableIdentity: true})
	t.Cleanup(func() { _ = rc.Close() })
	return srv, rc
}

// putToken writes a token for the console at port into Redis, as a writer
// does: the token-file line under consoleproxy:token:<hash>, with an expiry.
func putToken(t *testing.T, rc *redis.Client, token string, port int) {
	t.Helper()
	h := tokens.HashToken([]byte(token))
	line, _ := json.Marshal(record{ConsoleType: "novnc", Host: "127.0.0.1", Port: port, InstanceUUID: "7a1e2b3c-0000-4000-8000-00000000f1ee",
		Expires: time.Now().Add(time.Hour).Unix(), TokenHash: h.Hex()})
	if err := rc.Set(context.Background(), "consoleproxy:token:"+h.Hex(), line, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
}

// fleetProxy is an in-process proxy whose tokens and reuse state are in
// the Redis at srv, as `--token-store redis://…` wires it.
func fleetProxy(t *testing.T, srv *redistest.Server, p reuse.Policy) *proxy {
	t.Helper()
	st, g := fleetStores(t, srv, p)
	return startProxy(t, func(cfg *loop.Config) { cfg.Store, cfg.Reuse = st, g })
}

// fleetStores opens the Redis token store and reuse guard at srv, closed
// at the end of the test (after the proxy's shutdown).
func fleetStores(t *testing.T, srv *redistest.Server, p reuse.Policy) (*tokens.Redis, *tokens.RedisGuard) {
	t.Helper()
	u, err := tokens.ParseRedisURL(srv.URL(0))
	if err != nil {
		t.Fatal(err)
	}
	st := tokens.OpenRedis(tokens.RedisConfig{URL: u})
	g := tokens.OpenRedisGuard(tokens.RedisGuardConfig{URL: u, Policy: p})
	t.Cleanup(func() { _ = g.Close(); _ = st.Close() })
	return st, g
}

// TestFleetReuse: two proxies sharing one Redis agree on --token-reuse. An
// exclusive token live on A is refused on B (403) and accepted on B once
// A's session has closed; a single-use token used on A is refused on B. A
// refused client never reaches the compute host.
func TestFleetReuse(t *testing.T) {
	srv, rc := startRedis(t, "")
	b := startBackend(t, echo)
	t.Run("exclusive", func(t *testing.T) {
		pa, pb := fleetProxy(t, srv, reuse.Exclusive), fleetProxy(t, srv, reuse.Exclusive)
		putToken(t, rc, "tok-fleet-x", b.port())
		accepts := b.accepts.Load() + 1
		first := open(t, pa.addr, req{token: "tok-fleet-x"})
		// The compute host accepts A's connection on its own time.
		testutil.WaitFor(t, "A's session at the compute host", func() bool { return b.accepts.Load() == accepts })
		for i := 0; i < 2; i++ {
			if c := dial(t, pb.addr, req{token: "tok-fleet-x"}); c.resp.StatusCode != 403 {
				t.Fatalf("live on A, B answered %d, want 403", c.resp.StatusCode)
			}
		}
		if b.accepts.Load() != accepts {
			t.Fatal("a refused client reached the compute host")
		}
		first.conn.Close()
		testutil.WaitFor(t, "A's session closed", func() bool { return pa.srv.Active() == 0 })
		testutil.WaitFor(t, "B accepts once A released", func() bool {
			return dial(t, pb.addr, req{token: "tok-fleet-x"}).resp.StatusCode == 101
		})
		if c := dial(t, pa.addr, req{token: "tok-fleet-x"}); c.resp.StatusCode != 403 {
			t.Fatalf("live on B, A answered %d, want 403", c.resp.StatusCode)
		}
	})
	t.Run("single-use", func(t *testing.T) {
		pa, pb := fleetProxy(t, srv, reuse.SingleUse), fleetProxy(t, srv, reuse.SingleUse)
		putToken(t, rc, "tok-fleet-once", b.port())
		accepts := b.accepts.Load() + 1
		c := open(t, pa.addr, req{token: "tok-fleet-once"})
		c.conn.Close()
		testutil.WaitFor(t, "A's session closed", func() bool { return pa.srv.Active() == 0 })
		testutil.WaitFor(t, "A's session at the compute host", func() bool { return b.accepts.Load() == accepts })
		for _, p := range []*proxy{pb, pa} {
			if c := dial(t, p.addr, req{token: "tok-fleet-once"}); c.resp.StatusCode != 403 {
				t.Fatalf("used on A: %d, want 403", c.resp.StatusCode)
			}
		}
		if b.accepts.Load() != accepts {
			t.Fatal("a refused client reached the compute host")
		}
	})
}

// TestFleetReuseStoreDown: with the reuse store unreachable, a valid token
// is refused with 503 store_unavailable (deny by default, not 403), and the
// compute host never sees a connection.
func TestFleetReuseStoreDown(t *testing.T) {
	srv, _ := startRedis(t, "")
	u, _ := tokens.ParseRedisURL(srv.URL(0))
	srv.Stop()
	g := tokens.OpenRedisGuard(tokens.RedisGuardConfig{URL: u, Policy: reuse.Exclusive, Timeout: time.Second})
	t.Cleanup(func() { _ = g.Close() })
	b := startBackend(t, echo)
	p := startProxy(t, func(cfg *loop.Config) { cfg.Reuse = g })
	tok := p.mint(b.port(), nil)
	for i := 0; i < 2; i++ {
		if c := dial(t, p.addr, req{token: tok}); c.resp.StatusCode != 503 {
			t.Fatalf("reuse store down: %d, want 503", c.resp.StatusCode)
		}
	}
	if b.accepts.Load() != 0 {
		t.Fatal("a refused client reached the compute host")
	}
	if !strings.Contains(p.logs.String(), `"result":"store_unavailable"`) {
		t.Fatalf("no store_unavailable refusal in the log:\n%s", p.logs)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "101 once Redis is back", func() bool { return dial(t, p.addr, req{token: tok}).resp.StatusCode == 101 })
}

// TestFleetBinaries: two real binaries with only --token-store redis://…
// (with a password): the reuse guard defaults to the same Redis, so an
// exclusive token live on A is refused on B until A's session ends; the
// logs hold neither the password, the token nor its hash.
func TestFleetBinaries(t *testing.T) {
	const password = "fleet-pw-s3cret"
	srv, rc := startRedis(t, password)
	b := startBackend(t, echo)
	putToken(t, rc, "tok-fleet-bin", b.port())
	spec := srv.URL(0)
	pa, pb := startBinary(t, nil, "--token-store", spec), startBinary(t, nil, "--token-store", spec)
	first := open(t, pa.addr, req{token: "tok-fleet-bin"})
	if c := dial(t, pb.addr, req{token: "tok-fleet-bin"}); c.resp.StatusCode != 403 {
		t.Fatalf("live on A, B answered %d, want 403", c.resp.StatusCode)
	}
	first.conn.Close()
	testutil.WaitFor(t, "B accepts once A released", func() bool {
		return dial(t, pb.addr, req{token: "tok-fleet-bin"}).resp.StatusCode == 101
	})
	for _, p := range []*proc{pa, pb} {
		logs := p.stderr.String()
		for _, secret := range []string{password, "tok-fleet-bin", hashHex("tok-fleet-bin")} {
			if strings.Contains(logs, secret) {
				t.Fatalf("log contains a secret:\n%s", logs)
			}
		}
		if !strings.Contains(logs, "token reuse: fleet-wide in redis") || !strings.Contains(logs, ":xxxxx@") {
			t.Fatalf("log lacks the fleet guard's redacted URL:\n%s", logs)
		}
		m := metricsOf(t, p)
		for _, series := range []string{"consoleproxy_reuse_releases_dropped_total 0\n", "consoleproxy_reuse_leases_lost_total 0\n",
			"consoleproxy_reuse_leases_lapsed_total 0\n", "consoleproxy_reuse_renewals_failed_total 0\n"} {
			if !strings.Contains(m, series) {
				t.Fatalf("metrics lack %q:\n%s", series, grepLines(m, "reuse"))
			}
		}
	}
}
