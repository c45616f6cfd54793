//go:build linux

package main

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/consoleproxy/consoleproxy/loop"
)

// The limit flags map onto loop.Config: --max-sessions defaults to what the
// open-file limit allows, --max-pending 0 is no cap, negatives are refused.
func TestLimitFlags(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		args                             []string
		sessions, pending, perIP, authIP int
		err                              bool
	}{
		{nil, loop.SessionsForFDs(openFileLimit()), loop.DefaultMaxPending, 0, 0, false},
		{[]string{"--max-sessions", "0", "--max-pending", "0"}, 0, -1, 0, 0, false},
		{[]string{"--max-sessions", "7", "--max-pending", "9", "--max-sessions-per-ip", "3", "--auth-failures-per-ip", "5"}, 7, 9, 3, 5, false},
		{[]string{"--max-pending", "-1"}, 0, 0, 0, 0, true},
		{[]string{"--max-sessions-per-ip", "-1"}, 0, 0, 0, 0, true},
		{[]string{"--auth-failures-per-ip", "-1"}, 0, 0, 0, 0, true},
	} {
		o, _, err := parseFlags(tc.args, func(string) string { return "" }, io.Discard)
		if tc.err && err != nil && strings.Contains(err.Error(), tc.args[0]) {
			continue // refused by the flag itself, naming it
		}
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := config(o, log)
		if tc.err {
			if err == nil {
				t.Errorf("%v accepted", tc.args)
			}
			continue
		}
		if err != nil || cfg.MaxSessions != tc.sessions || cfg.MaxPending != tc.pending ||
			cfg.MaxSessionsPerIP != tc.perIP || cfg.AuthFailuresPerIP != tc.authIP {
			t.Errorf("%v: %v, sessions %d pending %d per-ip %d auth %d", tc.args, err,
				cfg.MaxSessions, cfg.MaxPending, cfg.MaxSessionsPerIP, cfg.AuthFailuresPerIP)
		}
	}
	if n, err := raiseOpenFileLimit(); err != nil || n != openFileLimit() || n == 0 {
		t.Fatalf("raiseOpenFileLimit: %d %v (soft limit now %d)", n, err, openFileLimit())
	}
}
