package tokens

import (
	"context"
	"errors"
	"net"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/internal/testutil/novadbtest"
)

// novaFixture is a cell database and a NovaDB store reading it.
type novaFixture struct {
	cell  *novadbtest.Cell
	clock *fakeClock
	logs  *logBuffer
	s     *NovaDB
}

func openNova(t *testing.T, srv *novadbtest.Server, withTLSPort bool) *novaFixture {
	t.Helper()
	fx := &novaFixture{cell: newCell(t, srv, withTLSPort), clock: newClock()}
	fx.s, fx.logs = openStore(t, fx.cell.URL(), fx.clock, 0)
	return fx
}

// openStore opens a NovaDB on url; its log must never hold the password.
func openStore(t *testing.T, dsn string, clock *fakeClock, timeout time.Duration) (*NovaDB, *logBuffer) {
	t.Helper()
	d, err := ParseNovaDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	log, lb := newLog()
	s, err := OpenNovaDB(NovaDBConfig{DSN: d, Logger: log, Now: clock.Now, QueryTimeout: timeout, LogInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		if strings.Contains(lb.String(), novadbtest.Password) || strings.Contains(lb.String(), url.QueryEscape(novadbtest.Password)) {
			t.Errorf("the password reached the log:\n%s", lb)
		}
	})
	return s, lb
}

// add inserts a live instance and a token for it; edit changes the row.
func (fx *novaFixture) add(t *testing.T, edit func(*novadbtest.Token)) (string, novadbtest.Token) {
	t.Helper()
	tok := novadbtest.Token{ConsoleType: "novnc", Host: "compute-1.example.net", Port: 5901,
		InstanceUUID: novadbtest.NewUUID(), Expires: fx.clock.Now().Add(10 * time.Minute).Unix()}
	if edit != nil {
		edit(&tok)
	}
	if err := fx.cell.AddInstance(tok.InstanceUUID); err != nil {
		t.Fatal(err)
	}
	token, err := fx.cell.AddToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	return token, tok
}

func (fx *novaFixture) lookup(token string) (Record, error) {
	return fx.s.Lookup(context.Background(), HashToken([]byte(token)))
}

func ptr[T any](v T) *T { return &v }

// TestNovaDBLookup: Nova's console_auth_token_get_valid (the row by hash,
// expires > now) plus the instance check, on both databases.
func TestNovaDBLookup(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *novadbtest.Server) {
		fx := openNova(t, srv, true)
		now := fx.clock.Now().Unix()
		full, row := fx.add(t, func(tok *novadbtest.Token) {
			tok.TLSPort, tok.InternalAccessPath = ptr(5902), ptr("/console/abc?x=1")
			tok.AccessURLBase = ptr("https://console.example.com:6080/vnc_lite.html")
		})
		plain, plainRow := fx.add(t, nil)
		serial, _ := fx.add(t, func(tok *novadbtest.Token) { tok.ConsoleType = "serial" })
		expired, _ := fx.add(t, func(tok *novadbtest.Token) { tok.Expires = now - 1 })
		boundary, _ := fx.add(t, func(tok *novadbtest.Token) { tok.Expires = now }) // valid while expires > now
		deleted, deletedRow := fx.add(t, nil)
		if err := fx.cell.DeleteInstance(deletedRow.InstanceUUID); err != nil {
			t.Fatal(err)
		}
		orphan := novadbtest.NewUUID()
		orphanTok, err := fx.cell.AddToken(novadbtest.Token{ConsoleType: "novnc", Host: "h", Port: 5900, InstanceUUID: orphan, Expires: now + 60})
		if err != nil {
			t.Fatal(err)
		}

		rec, err := fx.lookup(full)
		want := Record{TokenHash: HashToken([]byte(full)).Hex(), ConsoleType: "novnc", Host: "compute-1.example.net",
			Port: 5901, TLSPort: ptr(5902), InternalAccessPath: ptr("/console/abc?x=1"), InstanceUUID: row.InstanceUUID,
			AccessURLBase: "https://console.example.com:6080/vnc_lite.html", Expires: row.Expires}
		if err != nil || !reflect.DeepEqual(rec, want) {
			t.Fatalf("full row: %+v, %v; want %+v", rec, err, want)
		}
		rec, err = fx.lookup(plain)
		if err != nil || rec.TLSPort != nil || rec.InternalAccessPath != nil || rec.AccessURLBase != "" || rec.InstanceUUID != plainRow.InstanceUUID {
			t.Fatalf("row with NULLs: %+v, %v", rec, err)
		}
		// The store returns another console type's row; the proxy refuses it.
		if rec, err := fx.lookup(serial); err != nil || rec.ConsoleType != "serial" {
			t.Fatalf("serial row: %+v, %v", rec, err)
		}
		for _, tc := range []struct {
			name, token string
			want        error
		}{
			{"expired", expired, ErrExpired},
			{"expires == now", boundary, ErrExpired},
			{"unknown", "not-a-token", ErrNotFound},
			{"instance soft-deleted", deleted, ErrInstanceGone},
			{"instance missing", orphanTok, ErrInstanceGone},
		} {
			if _, err := fx.lookup(tc.token); !errors.Is(err, tc.want) {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
			}
		}
		if !errors.Is(ErrInstanceGone, ErrNotFound) {
			t.Error("ErrInstanceGone must be a 403 (ErrNotFound)")
		}
		for _, secret := range []string{full, HashToken([]byte(full)).Hex(), deleted} {
			if strings.Contains(fx.logs.String(), secret) {
				t.Fatalf("a token or its hash reached the log:\n%s", fx.logs)
			}
		}
	})
}

// TestNovaDBLegacySchema: a table from before Nova 2024.2 has no tls_port;
// the store notices once and reads without it.
func TestNovaDBLegacySchema(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *novadbtest.Server) {
		fx := openNova(t, srv, false)
		for i := 0; i < 3; i++ {
			token, row := fx.add(t, nil)
			rec, err := fx.lookup(token)
			if err != nil || rec.TLSPort != nil || rec.InstanceUUID != row.InstanceUUID {
				t.Fatalf("legacy row: %+v, %v", rec, err)
			}
		}
		if n := fx.logs.count("no tls_port column"); n != 1 {
			t.Fatalf("%d notices of the legacy schema, want 1:\n%s", n, fx.logs)
		}
	})
}

// TestNovaDBConcurrent: more lookups at once than connections; the pool
// makes them wait, none fails.
func TestNovaDBConcurrent(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *novadbtest.Server) {
		fx := openNova(t, srv, true)
		d, _ := ParseNovaDSN(fx.cell.URL())
		log, _ := newLog()
		s, err := OpenNovaDB(NovaDBConfig{DSN: d, Logger: log, Now: fx.clock.Now, MaxOpenConns: 2})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		token, _ := fx.add(t, nil)
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for i := 0; i < 64; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.Lookup(context.Background(), HashToken([]byte(token)))
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestNovaDBOutage: the database stops in the middle: lookups answer
// ErrUnavailable with one log line per interval; when it is back, lookups
// work again on the same store.
func TestNovaDBOutage(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *novadbtest.Server) {
		fx := openNova(t, srv, true)
		token, _ := fx.add(t, nil)
		if _, err := fx.lookup(token); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = srv.Start() }) // whatever happens, later tests get their server
		if err := srv.Stop(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 20; i++ {
			if _, err := fx.lookup(token); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("lookup %d with the database stopped: %v", i, err)
			}
		}
		if n := fx.logs.count("nova database unavailable"); n != 1 {
			t.Fatalf("%d outage lines for 20 failed lookups, want 1:\n%s", n, fx.logs)
		}
		fx.clock.Advance(time.Minute) // the log interval
		_, _ = fx.lookup(token)
		if n := fx.logs.count("nova database unavailable"); n != 2 {
			t.Fatalf("%d outage lines after an interval, want 2:\n%s", n, fx.logs)
		}
		if !strings.Contains(fx.logs.String(), `"failed_lookups":20`) {
			t.Errorf("the second line does not count the 20 lookups failed meanwhile:\n%s", fx.logs)
		}
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		if rec, err := fx.lookup(token); err != nil || rec.Port != 5901 {
			t.Fatalf("after the database came back: %+v, %v", rec, err)
		}
		if n := fx.logs.count("nova database available again"); n != 1 {
			t.Fatalf("%d recovery lines, want 1:\n%s", n, fx.logs)
		}
	})
}

// TestNovaDBWrongDatabase: pointed at a database without Nova's tables (the
// API database instead of a cell's), lookups answer ErrUnavailable and the
// log says what is wrong.
func TestNovaDBWrongDatabase(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *novadbtest.Server) {
		cell := newCell(t, srv, true)
		u := strings.Replace(cell.URL(), "/"+cell.Name+"?", "/"+cellWithoutTables(t, srv)+"?", 1)
		s, logs := openStore(t, u, newClock(), 0)
		if _, err := s.Lookup(context.Background(), HashToken([]byte("x"))); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("lookup: %v", err)
		}
		if !strings.Contains(logs.String(), "cell database") {
			t.Fatalf("the log does not point at the cause:\n%s", logs)
		}
	})
}

// cellWithoutTables creates an empty database the nova user may use.
func cellWithoutTables(t *testing.T, srv *novadbtest.Server) string {
	t.Helper()
	name := "nova_api" + strings.ReplaceAll(novadbtest.NewUUID()[:8], "-", "")
	stmts := []string{"CREATE DATABASE " + name, "GRANT SELECT ON " + name + ".* TO 'nova'@'127.0.0.1'"}
	if srv.Kind == novadbtest.PostgreSQL {
		stmts = stmts[:1]
	}
	if err := srv.Exec("", stmts...); err != nil {
		t.Fatal(err)
	}
	return name
}

// TestNovaDBUnreachable: a database that refuses connections, or accepts
// them and never answers, gives ErrUnavailable within the query timeout;
// opening the store does not need the database.
func TestNovaDBUnreachable(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	}()
	closed := testutil.FreeAddr(t)
	for _, dsn := range []string{
		"mysql+pymysql://nova:pw@" + closed + "/nova",
		"postgresql://nova:pw@" + closed + "/nova?sslmode=disable",
		"mysql+pymysql://nova:pw@" + silent.Addr().String() + "/nova",
		"postgresql://nova:pw@" + silent.Addr().String() + "/nova?sslmode=disable",
	} {
		s, logs := openStore(t, dsn, newClock(), 300*time.Millisecond)
		if _, err := s.Lookup(context.Background(), HashToken([]byte("x"))); !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s: %v", dsn, err)
		}
		if n := logs.count("nova database unavailable"); n != 1 {
			t.Errorf("%s: %d outage lines (open, then a lookup in the same interval), want 1:\n%s", dsn, n, logs)
		}
	}
}
