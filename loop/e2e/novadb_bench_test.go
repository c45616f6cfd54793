//go:build linux

package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/internal/testutil/novadbtest"
	"github.com/consoleproxy/consoleproxy/loop"
	"github.com/consoleproxy/consoleproxy/relay/reuse"
	"github.com/consoleproxy/consoleproxy/relay/tokens"
)

// BenchmarkNovaDBHandshake measures what a Nova database lookup adds to a
// handshake (upgrade, lookup, dial, 101, close), MariaDB on loopback against
// the in-memory token file, in the same run: "serial" reports the median
// and p99 of one client's handshakes, "parallel" the handshakes per second
// of 64 concurrent clients. Compare the two stores' figures.
func BenchmarkNovaDBHandshake(b *testing.B) {
	srv, err := novadbtest.StartMariaDB()
	if err != nil {
		testutil.Need(b, fmt.Errorf("MariaDB: %w", err))
	}
	defer srv.Close()
	cell, err := srv.CreateCell("nova_bench", true)
	if err != nil {
		b.Fatal(err)
	}
	backend := startBackend(b, echo)
	uuid := novadbtest.NewUUID()
	if err := cell.AddInstance(uuid); err != nil {
		b.Fatal(err)
	}
	token, err := cell.AddToken(novadbtest.Token{ConsoleType: "novnc", Host: "127.0.0.1", Port: backend.port(),
		InstanceUUID: uuid, Expires: time.Now().Add(time.Hour).Unix()})
	if err != nil {
		b.Fatal(err)
	}
	dsn, err := tokens.ParseNovaDSN(cell.URL())
	if err != nil {
		b.Fatal(err)
	}
	nova, err := tokens.OpenNovaDB(tokens.NovaDBConfig{DSN: dsn})
	if err != nil {
		b.Fatal(err)
	}
	defer nova.Close()

	shared := func(cfg *loop.Config) { cfg.Reuse = reuse.NewLocalGuard(reuse.Shared, time.Now) }
	file := startProxy(b, shared)
	fileToken := file.mint(backend.port(), nil)
	db := startProxy(b, func(cfg *loop.Config) { shared(cfg); cfg.Store = nova })
	for _, tc := range []struct {
		name, addr, token string
	}{{"file", file.addr, fileToken}, {"novadb", db.addr, token}} {
		b.Run(tc.name+"/serial", func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if err := handshake(tc.addr, tc.token); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
		b.Run(tc.name+"/parallel", func(b *testing.B) {
			b.SetParallelism((64 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0)) // 64 clients
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := handshake(tc.addr, tc.token); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "handshakes/s")
		})
	}
}

// handshake opens one session and closes it; any answer but 101 is an
// error. Safe on any goroutine (no testing.TB).
func handshake(addr, token string) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req{token: token}.request(addr)); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	if resp.StatusCode != 101 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}
