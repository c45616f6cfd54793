package testutil

import (
	"os"
	"strconv"
	"testing"
)

// FDs is the number of descriptors process pid holds open (Linux: the
// entries of /proc/PID/fd).
func FDs(tb testing.TB, pid int) int {
	tb.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		tb.Fatal(err)
	}
	return len(ents)
}
