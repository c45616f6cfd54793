package tokens

import (
	"context"
	"testing"
	"time"

	"github.com/consoleproxy/consoleproxy/internal/testutil/novadbtest"
)

// BenchmarkNovaDBLookup is one token lookup (query, instance check, scan) on
// each database over loopback: serial, then from 64 goroutines through the
// default pool.
func BenchmarkNovaDBLookup(b *testing.B) {
	for _, srv := range servers(b) {
		cell := newCell(b, srv, true)
		uuid := novadbtest.NewUUID()
		if err := cell.AddInstance(uuid); err != nil {
			b.Fatal(err)
		}
		token, err := cell.AddToken(novadbtest.Token{ConsoleType: "novnc", Host: "h", Port: 5900,
			InstanceUUID: uuid, Expires: time.Now().Add(time.Hour).Unix()})
		if err != nil {
			b.Fatal(err)
		}
		d, _ := ParseNovaDSN(cell.URL())
		log, _ := newLog()
		s, err := OpenNovaDB(NovaDBConfig{DSN: d, Logger: log})
		if err != nil {
			b.Fatal(err)
		}
		h := HashToken([]byte(token))
		b.Run(srv.Kind+"/serial", func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := s.Lookup(context.Background(), h); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(srv.Kind+"/parallel", func(b *testing.B) {
			b.SetParallelism(32)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.Lookup(context.Background(), h); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
		s.Close()
	}
}
