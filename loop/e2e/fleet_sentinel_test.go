package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/redis/go-redis/v9"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/internal/testutil/redistest"
	"github.com/consoleproxy/consoleproxy/loop"
	"github.com/consoleproxy/consoleproxy/relay/reuse"
	"github.com/consoleproxy/consoleproxy/relay/tokens"
)

// sentinelSet is a primary, two replicas and three Sentinels (quorum 2).
type sentinelSet struct {
	primary   *redistest.Server
	replicas  []*redistest.Server
	sentinels []*redistest.Sentinel
	url       string // the proxies' Sentinel URL
}

const sentinelMaster = "consoleproxy"

// startSentinels starts the set, with a failover bounded for a test (down
// after 1 s), and waits until both replicas are in sync (a claim waits for
// one) and every Sentinel knows both replicas and the other Sentinels (a
// failover needs both). It skips the test without the
// binaries.
func startSentinels(t *testing.T) *sentinelSet {
	t.Helper()
	for _, bin := range []string{"redis-server", "redis-sentinel"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (scripts/deps.sh installs it): %v", bin, err)
		}
	}
	s := &sentinelSet{}
	var err error
	if s.primary, err = redistest.Start(""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.primary.Close() })
	for i := 0; i < 2; i++ {
		r, err := redistest.StartReplica(s.primary)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		s.replicas = append(s.replicas, r)
	}
	times := redistest.SentinelTimes{DownAfter: time.Second, FailoverTimeout: 5 * time.Second}
	for i := 0; i < 3; i++ {
		sn, err := redistest.StartSentinel(sentinelMaster, s.primary, 2, times)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("sentinel %d log:\n%s", sn.Port, sn.LogTail())
			}
			_ = sn.Close()
		})
		s.sentinels = append(s.sentinels, sn)
	}
	pc := redis.NewClient(&redis.Options{Addr: s.primary.Addr(), DisableIdentity: true})
	testutil.WaitFor(t, "both replicas in sync", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		info, err := pc.Info(ctx, "replication").Result()
		return err == nil && strings.Count(info, "state=online") == 2
	})
	_ = pc.Close()
	q := url.Values{"master_name": {sentinelMaster}}
	for _, sn := range s.sentinels[1:] {
		q.Add("addr", sn.Addr())
	}
	s.url = "redis://" + s.sentinels[0].Addr() + "/0?" + q.Encode()
	for _, sn := range s.sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr(), DisableIdentity: true})
		testutil.WaitFor(t, "a Sentinel that knows the replicas and the other Sentinels", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			reps, err1 := sc.Replicas(ctx, sentinelMaster).Result()
			others, err2 := sc.Sentinels(ctx, sentinelMaster).Result()
			return err1 == nil && err2 == nil && len(reps) == 2 && len(others) == 2
		})
		_ = sc.Close()
	}
	return s
}

// masterPort is the primary's port as the first Sentinel names it.
func (s *sentinelSet) masterPort(t *testing.T) int {
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.sentinels[0].Addr(), DisableIdentity: true})
	defer sc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	addr, err := sc.GetMasterAddrByName(ctx, sentinelMaster).Result()
	if err != nil || len(addr) != 2 {
		return 0
	}
	port, _ := strconv.Atoi(addr[1])
	return port
}

// sentinelPeer is a proxy whose token store and reuse store are the
// Sentinel-managed primary, as --token-store <Sentinel URL> wires them.
func sentinelPeer(t *testing.T, spec string, p reuse.Policy) (*proxy, *tokens.RedisGuard) {
	t.Helper()
	u, err := tokens.ParseRedisURL(spec)
	if err != nil {
		t.Fatal(err)
	}
	if !u.Sentinel() {
		t.Fatal("not parsed as a Sentinel URL")
	}
	st := tokens.OpenRedis(tokens.RedisConfig{URL: u})
	g := tokens.OpenRedisGuard(tokens.RedisGuardConfig{URL: u, Policy: p})
	t.Cleanup(func() { _ = g.Close(); _ = st.Close() })
	return startProxy(t, func(cfg *loop.Config) { cfg.Store, cfg.Reuse = st, g }), g
}

// TestFleetSentinelFailover: two proxies on a Sentinel URL, exclusive
// tokens. Under steady load (live tokens tried on the other proxy, fresh
// tokens opened one after the other), the primary is killed: the proxies
// follow the new primary; no token is ever admitted twice (a live token
// tried elsewhere is never 101); a token not live anywhere is never 403,
// only 503 while no primary is reachable, and opens once one is; the
// sessions opened before the kill go on relaying.
func TestFleetSentinelFailover(t *testing.T) {
	set := startSentinels(t)
	b := startBackend(t, echo)
	rc := redis.NewClient(&redis.Options{Addr: set.primary.Addr(), DisableIdentity: true})
	defer rc.Close()
	const nLive, nFresh, nAfter = 6, 16, 6
	var all []string
	for i := 0; i < nLive+nFresh+nAfter; i++ {
		tok := fmt.Sprintf("tok-sentinel-%02d", i)
		putToken(t, rc, tok, b.port())
		all = append(all, tok)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if n, err := rc.Wait(ctx, 2, 5000).Result(); err != nil || n != 2 {
		t.Fatalf("tokens not on both replicas: %d %v", n, err)
	}
	cancel()
	p0, _ := sentinelPeer(t, set.url, reuse.Exclusive)
	p1, g1 := sentinelPeer(t, set.url, reuse.Exclusive)
	proxies := []*proxy{p0, p1}
	live := map[string]*wsClient{} // token → its session
	owner := map[string]int{}      // token → the proxy it is live on
	for _, tok := range all[:nLive] {
		live[tok], owner[tok] = open(t, proxies[0].addr, req{token: tok}), 0
		echoes(t, live[tok])
	}
	oldPort := set.primary.Port
	fresh, after := all[nLive:nLive+nFresh], all[nLive+nFresh:]
	var doubles, fresh403, unavailable int
	tick := time.NewTicker(20 * time.Millisecond) // paces the load; nothing waits on it
	defer tick.Stop()
	killed := false
	for round := 0; round < 1500 && len(fresh) > 0; round++ {
		<-tick.C
		if round == 5 {
			set.primary.Stop() // SIGKILL: writes not yet replicated are lost
			killed = true
		}
		// A live token on the other proxy: never a second session.
		for tok, c := range live {
			other := proxies[1-owner[tok]]
			switch code := dial(t, other.addr, req{token: tok}).resp.StatusCode; code {
			case 101:
				doubles++
				t.Errorf("round %d: %s live on proxy %d admitted again", round, tok, owner[tok])
			case 403, 503:
			default:
				t.Fatalf("a live token elsewhere: %d", code)
			}
			_ = c
		}
		// The next fresh token, on alternate proxies: 101 or 503, never 403.
		tok, pi := fresh[0], round%2
		switch code := dialOpen(t, proxies[pi].addr, tok); {
		case code.status == 101:
			live[tok], owner[tok] = code.c, pi
			fresh = fresh[1:]
		case code.status == 503:
			unavailable++
		case code.status == 403:
			fresh403++
			t.Errorf("round %d: %s, live nowhere, refused with 403", round, tok)
		default:
			t.Fatalf("a fresh token: %d", code.status)
		}
	}
	if !killed || len(fresh) > 0 {
		t.Fatalf("load ended with %d fresh tokens never opened (killed: %v)", len(fresh), killed)
	}
	if p := set.masterPort(t); p == oldPort || p == 0 {
		t.Fatalf("Sentinel still names port %d (old %d)", p, oldPort)
	}
	if unavailable == 0 {
		t.Fatal("no 503 while the primary was down: the load missed the failover")
	}
	// A primary is reachable again: each token opens at its first try.
	for i, tok := range after {
		c := dialOpen(t, proxies[i%2].addr, tok)
		if c.status != 101 {
			t.Fatalf("after the failover, %s: %d at the first try, want 101", tok, c.status)
		}
		live[tok] = c.c
	}
	for _, c := range live {
		echoes(t, c) // nothing live was ended by the failover
	}
	// The subscriptions followed the new primary too: a revocation on
	// proxy 1 ends a session on proxy 0.
	h := tokens.HashToken([]byte(all[0]))
	if err := g1.Revoke(context.Background(), reuse.Key(h)); err != nil {
		t.Fatal(err)
	}
	closedWith(t, live[all[0]], ws.StatusPolicyViolation, "revoked after the failover")
	t.Logf("failover: %d answers 503 while no primary was reachable, %d admitted twice, %d fresh 403", unavailable, doubles, fresh403)
	for _, p := range proxies {
		if strings.Contains(p.logs.String(), "tok-sentinel-") {
			t.Fatalf("a token in the logs:\n%s", p.logs)
		}
	}
}

// opened is a dial's status and, for a 101, the session.
type opened struct {
	status int
	c      *wsClient
}

// dialOpen dials tok on addr; a 101 keeps the session (it relays).
func dialOpen(t *testing.T, addr, tok string) opened {
	t.Helper()
	c := dial(t, addr, req{token: tok})
	if c.resp.StatusCode != 101 {
		return opened{status: c.resp.StatusCode}
	}
	c.send(ws.OpBinary, []byte("ping"))
	if got := string(c.readData(4)); got != "ping" {
		t.Fatalf("echo: %q", got)
	}
	return opened{status: 101, c: c}
}

// TestFleetTakeoverBinaries: two real binaries with only --token-store
// <Sentinel URL> and --token-reuse takeover: the reuse store follows the
// token store; a session opened on B ends A's older one with close 1008;
// the logs hold neither the token, its hash nor the URL's query.
func TestFleetTakeoverBinaries(t *testing.T) {
	set := startSentinels(t)
	b := startBackend(t, echo)
	rc := redis.NewClient(&redis.Options{Addr: set.primary.Addr(), DisableIdentity: true})
	defer rc.Close()
	putToken(t, rc, "tok-take-bin", b.port())
	args := []string{"--token-store", set.url, "--token-reuse", "takeover"}
	pa, pb := startBinary(t, nil, args...), startBinary(t, nil, args...)
	first := open(t, pa.addr, req{token: "tok-take-bin"})
	echoes(t, first)
	second := open(t, pb.addr, req{token: "tok-take-bin"})
	closedWith(t, first, ws.StatusPolicyViolation, "taken over by B")
	echoes(t, second)
	for _, p := range []*proc{pa, pb} {
		logs := p.stderr.String()
		for _, secret := range []string{"tok-take-bin", hashHex("tok-take-bin"), "master_name"} {
			if strings.Contains(logs, secret) {
				t.Fatalf("log contains %q:\n%s", secret, logs)
			}
		}
		if !strings.Contains(logs, `"policy":"takeover"`) {
			t.Fatalf("log lacks the fleet guard's policy:\n%s", logs)
		}
	}
}
