package tokens

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/internal/testutil/redistest"
	"github.com/consoleproxy/consoleproxy/relay/reuse"
)

// TestParseSentinelURL: go-redis's failover URL form (master_name in the
// query) is a Sentinel URL: the host and every addr are Sentinels, the
// userinfo their credentials, password the primary's; it is logged
// without its query; a bad one is refused without quoting it.
func TestParseSentinelURL(t *testing.T) {
	u, err := ParseRedisURL("redis://sn:s3cret@10.0.0.1:26379/2?master_name=cp&addr=10.0.0.2:26379&addr=10.0.0.3:26379&password=s3cret")
	if err != nil {
		t.Fatal(err)
	}
	f := u.failover
	if !u.Sentinel() || f.MasterName != "cp" || u.db() != 2 || len(f.SentinelAddrs) != 3 ||
		f.SentinelPassword != "s3cret" || f.Password != "s3cret" {
		t.Fatalf("parsed %+v", f)
	}
	if s := u.String(); s != "redis://sn:xxxxx@10.0.0.1:26379/2?…" {
		t.Fatalf("logged as %s", s)
	}
	if plain, _ := ParseRedisURL("redis://10.0.0.1:6379/1"); plain.Sentinel() || plain.db() != 1 {
		t.Fatal("a plain URL taken for a Sentinel one")
	}
	for _, spec := range []string{"redis://:s3cret@h:1/0?master_name=", "redis://:s3cret@h:1/0?master_name=m&addr=s3cret",
		"redis://:s3cret@h:1/0?master_name=m&bogus=s3cret"} {
		_, err := ParseRedisURL(spec)
		if err == nil {
			t.Errorf("%q accepted", spec)
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error quotes the URL: %v", err)
		}
	}
}

// TestRedisGuardWaitsForReplica: with WaitReplicas, a claim counts only
// once a replica holds it: with the only replica down, Acquire refuses with
// ErrUnavailable (503, never ErrTokenInUse) and undoes its claim (the
// token is free for the next try); with the replica back, it claims.
func TestRedisGuardWaitsForReplica(t *testing.T) {
	primary := ownRedis(t, "")
	replica, err := redistest.StartReplica(primary)
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Close()
	rc := redisClient(t, primary, 0)
	waitReplicas := func(n int) {
		testutil.CheckFor(t, fmt.Sprintf("%d replicas in sync", n), func() error {
			info, err := rc.Info(context.Background(), "replication").Result()
			if err != nil || !strings.Contains(info, fmt.Sprintf("connected_slaves:%d", n)) ||
				strings.Count(info, "state=online") != n {
				return fmt.Errorf("replication: %v", err)
			}
			return nil
		})
	}
	waitReplicas(1)
	// WAIT may take Timeout/2: 2 s leaves a loaded machine's replica time
	// to acknowledge (1 s failed once, under the whole suite's load).
	g := guardOn(t, primary.URL(0), RedisGuardConfig{Policy: reuse.Exclusive, WaitReplicas: 1, Timeout: 4 * time.Second})
	testutil.CheckFor(t, "a claim with the replica up", func() error {
		rel, err := g.Acquire(keyOf("tok-wait-1"), time.Now().Add(time.Hour), nil)
		if err == nil {
			rel()
		}
		return err
	})
	replica.Stop()
	waitReplicas(0)
	_, err = g.Acquire(keyOf("tok-wait-2"), time.Now().Add(time.Hour), nil)
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, reuse.ErrTokenInUse) {
		t.Fatalf("no replica: %v, want ErrUnavailable", err)
	}
	testutil.CheckFor(t, "the unreplicated claim undone", func() error {
		if v, _ := keyState(t, rc, liveKey("tok-wait-2")); v != "" {
			return errors.New("still there")
		}
		return nil
	})
	if err := replica.Start(); err != nil {
		t.Fatal(err)
	}
	waitReplicas(1)
	testutil.CheckFor(t, "a claim once the replica is back", func() error {
		_, err := g.Acquire(keyOf("tok-wait-2"), time.Now().Add(time.Hour), nil)
		return err
	})
}
