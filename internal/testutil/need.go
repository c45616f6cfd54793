package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// RequireEnv, set to 1 (as `make test` does, after scripts/deps.sh has
// installed everything), turns a skip for a missing server into a failure,
// so a missing package cannot quietly drop tests from a full run.
const RequireEnv = "CONSOLEPROXY_TEST_REQUIRE_ALL"

// ErrNotInstalled is wrapped by LookBinary and by the server fixtures
// (redistest, novadbtest) when what a test needs is absent: Need turns it
// into a skip with its reason.
var ErrNotInstalled = errors.New("not installed (scripts/deps.sh installs it)")

// LookBinary returns the path of the executable name, looked up on PATH and
// then in dirs (Debian puts servers in /usr/sbin or a versioned directory,
// which are not on every PATH; a glob such as /usr/lib/postgresql/*/bin is
// allowed, its last match wins). Absent, the error wraps ErrNotInstalled.
func LookBinary(name string, dirs ...string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range dirs {
		if matches, _ := filepath.Glob(filepath.Join(d, name)); len(matches) > 0 {
			return matches[len(matches)-1], nil
		}
	}
	return "", fmt.Errorf("%s %w", name, ErrNotInstalled)
}

// NeedBinary is LookBinary for a test: when the executable is absent the
// test skips, saying what is missing and that scripts/deps.sh installs it
// (under RequireEnv=1 it fails).
func NeedBinary(t testing.TB, name string, dirs ...string) string {
	t.Helper()
	p, err := LookBinary(name, dirs...)
	Need(t, err)
	return p
}

// NeedPath is NeedBinary for a file or directory that is not an executable
// (noVNC's files).
func NeedPath(t testing.TB, path, what string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		Need(t, fmt.Errorf("%s (%s) %w", what, path, ErrNotInstalled))
	}
}

// Need fails the test on err, except that an err wrapping ErrNotInstalled
// skips it with its reason (fails under RequireEnv=1). nil does nothing.
func Need(t testing.TB, err error) {
	t.Helper()
	switch {
	case err == nil:
	case !errors.Is(err, ErrNotInstalled):
		t.Fatal(err)
	case os.Getenv(RequireEnv) == "1":
		t.Fatalf("%v (%s=1: every dependency must be present)", err, RequireEnv)
	default:
		t.Skip(err.Error())
	}
}
