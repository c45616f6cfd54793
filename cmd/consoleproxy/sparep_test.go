//go:build linux

package main

import (
	"runtime"
	"testing"
)

// GOMAXPROCS goes one above the loops (one per core) so that one P is
// spare beside them, unless the operator set GOMAXPROCS, and it never
// goes down.
func TestSpareP(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	if got := spareP(func(k string) string { return map[string]string{"GOMAXPROCS": "1"}[k] }); got != 1 {
		t.Errorf("GOMAXPROCS=1 set by the operator: %d in force, want 1", got)
	}
	if got, want := spareP(func(string) string { return "" }), runtime.NumCPU()+1; got != want {
		t.Errorf("GOMAXPROCS unset: %d in force, want %d (one above %d loops)", got, want, runtime.NumCPU())
	}
	runtime.GOMAXPROCS(runtime.NumCPU() + 5)
	if got, want := spareP(func(string) string { return "" }), runtime.NumCPU()+5; got != want {
		t.Errorf("GOMAXPROCS already above the loops: %d in force, want %d kept", got, want)
	}
}
