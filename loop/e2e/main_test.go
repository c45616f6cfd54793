//go:build linux

package e2e

import (
	"os"
	"runtime"
	"testing"
)

// harnessLoops is the event loops of the harness's in-process proxy.
const harnessLoops = 2

// TestMain runs the in-process proxies as the binary runs: with a P spare
// beside their loops (cmd/consoleproxy raises GOMAXPROCS to one above the
// loops), so the loops sleep holding their P (loop.Server's holdP) here too,
// whatever the machine's core count.
func TestMain(m *testing.M) {
	runtime.GOMAXPROCS(max(runtime.GOMAXPROCS(0), harnessLoops+1))
	os.Exit(m.Run())
}
