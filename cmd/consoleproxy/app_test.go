//go:build linux

package main

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestConsoleTypes: each of Nova's console kinds is a valid listener; a
// serial listener serves no static files, as nova-serialproxy; another kind
// is refused.
func TestConsoleTypes(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"--console-type", "novnc", "--web", "/usr/share/novnc"}, ""},
		{[]string{"--console-type", "spice-html5", "--web", "/usr/share/spice-html5"}, ""},
		{[]string{"--console-type", "serial"}, ""},
		{[]string{"--console-type", "serial", "--web", "/usr/share/novnc"}, "--web is not served with --console-type serial"},
		{[]string{"--console-type", "rdp"}, "--console-type must be"},
	} {
		o, _, err := parseFlags(tc.args, func(string) string { return "" }, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := config(o, log)
		if tc.err == "" && (err != nil || cfg.ConsoleType != o.consoleType) || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%v: %v (console type %q), want error %q", tc.args, err, cfg.ConsoleType, tc.err)
		}
	}
}

// TestReuseStore: --reuse-store wins; a Redis --token-store is the default
// reuse store; otherwise reuse state stays in process; only Redis URLs are
// accepted.
func TestReuseStore(t *testing.T) {
	for _, tc := range []struct {
		tokenStore, reuseStore, want, err string
	}{
		{"", "", "", ""},
		{"file:/x", "", "", ""},
		{"redis://r1:6379/1", "", "redis://r1:6379/1", ""},
		{"rediss://r1:6380", "redis://r2:6379", "redis://r2:6379", ""},
		{"novadb:mysql://nova@db/nova", "redis://r2:6379", "redis://r2:6379", ""},
		{"file:/x", "file:/y", "", "--reuse-store must be"},
	} {
		got, err := reuseStore(&options{tokenStore: tc.tokenStore, reuseStore: tc.reuseStore})
		if got != tc.want || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q %q: %q %v, want %q %q", tc.tokenStore, tc.reuseStore, got, err, tc.want, tc.err)
		}
	}
}

// TestLeaseTTL: --lease-ttl is the fleet guard's lease (default 30s);
// under 3s is a start-up error.
func TestLeaseTTL(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		args []string
		want time.Duration
		err  string
	}{
		{nil, 30 * time.Second, ""},
		{[]string{"--lease-ttl", "12s"}, 12 * time.Second, ""},
		{[]string{"--lease-ttl", "2s"}, 0, `--lease-ttl "2s": must be at least 3s`},
	} {
		// Redis need not be up: the guard connects lazily.
		args := append([]string{"--reuse-store", "redis://127.0.0.1:1"}, tc.args...)
		o, _, err := parseFlags(args, func(string) string { return "" }, io.Discard)
		if tc.err != "" {
			if err == nil {
				_, err = config(o, log)
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: %v, want %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := config(o, log)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		a := &app{log: log}
		if err := a.openReuse(o, &cfg); err != nil {
			t.Fatal(err)
		}
		if got := a.guard.Lease(); got != tc.want {
			t.Errorf("%v: lease %v, want %v", tc.args, got, tc.want)
		}
		_ = a.guard.Close()
	}
}
