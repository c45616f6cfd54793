package tokens

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/consoleproxy/consoleproxy/internal/testutil"
	"github.com/consoleproxy/consoleproxy/internal/testutil/novadbtest"
)

// shared holds the database servers the package's tests share: started on
// first use (both at once), stopped by TestMain. A server that cannot start
// fails the tests that need it; one not installed skips them (testutil.Need;
// make test, which installs both, fails instead).
var shared struct {
	once      sync.Once
	maria, pg *novadbtest.Server
	err       error
	cells     atomic.Int64
}

// servers returns the shared MariaDB and PostgreSQL servers.
func servers(t testing.TB) []*novadbtest.Server {
	t.Helper()
	shared.once.Do(func() {
		var wg sync.WaitGroup
		var errMaria, errPG error
		wg.Add(2)
		go func() { defer wg.Done(); shared.maria, errMaria = novadbtest.StartMariaDB() }()
		go func() { defer wg.Done(); shared.pg, errPG = novadbtest.StartPostgres() }()
		wg.Wait()
		switch {
		case errMaria != nil:
			shared.err = errMaria
		case errPG != nil:
			shared.err = errPG
		}
	})
	if shared.err != nil {
		testutil.Need(t, fmt.Errorf("database server: %w", shared.err))
	}
	return []*novadbtest.Server{shared.maria, shared.pg}
}

// stopServers stops the shared servers and removes their directories.
func stopServers() {
	for _, s := range []*novadbtest.Server{shared.maria, shared.pg} {
		if s != nil {
			_ = s.Close()
		}
	}
}

// newCell creates a fresh cell database on srv.
func newCell(t testing.TB, srv *novadbtest.Server, withTLSPort bool) *novadbtest.Cell {
	t.Helper()
	c, err := srv.CreateCell(fmt.Sprintf("nova_cell%d", shared.cells.Add(1)), withTLSPort)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// eachServer runs f as a subtest per shared server.
func eachServer(t *testing.T, f func(t *testing.T, srv *novadbtest.Server)) {
	for _, srv := range servers(t) {
		t.Run(srv.Kind, func(t *testing.T) { f(t, srv) })
	}
}
