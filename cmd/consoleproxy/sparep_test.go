//go:build linux

package main

import (
	"io"
	"log/slog"
	"runtime"
	"testing"
)

// GOMAXPROCS goes one above the loops (one per CPU the process may use)
// so that one P is spare beside them, unless the operator set GOMAXPROCS,
// and it never goes down.
func TestSpareP(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	if got := spareP(func(k string) string { return map[string]string{"GOMAXPROCS": "1"}[k] }); got != 1 {
		t.Errorf("GOMAXPROCS=1 set by the operator: %d in force, want 1", got)
	}
	if got, want := spareP(func(string) string { return "" }), startProcs+1; got != want {
		t.Errorf("GOMAXPROCS unset: %d in force, want %d (one above %d loops)", got, want, startProcs)
	}
	runtime.GOMAXPROCS(startProcs + 5)
	if got, want := spareP(func(string) string { return "" }), startProcs+5; got != want {
		t.Errorf("GOMAXPROCS already above the loops: %d in force, want %d kept", got, want)
	}
}

// The proxy runs one event loop per P the process started with.
func TestConfigEventLoops(t *testing.T) {
	o, _, err := parseFlags(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config(o, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.EventLoops != startProcs {
		t.Errorf("%d event loops, want %d (GOMAXPROCS at start)", cfg.EventLoops, startProcs)
	}
}
