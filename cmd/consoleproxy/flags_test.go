//go:build linux

package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/consoleproxy/consoleproxy/relay/tokens"
)

func noEnv(string) string { return "" }

// A mistake in a flag is reported naming the flag as the README writes it
// (--name), with the value and what is wrong.
func TestFlagErrorsNameTheFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--max-sessions", "-1"}, nil, `--max-sessions "-1": must be 0 or more`},
		{[]string{"--connect-timeout", "5"}, nil, `--connect-timeout "5": a duration needs a unit`},
		{[]string{"--idle-timeout", "soon"}, nil, `--idle-timeout "soon": not a duration`},
		{[]string{"--connect-timeout", "0s"}, nil, `--connect-timeout "0s": must be more than 0`},
		{[]string{"--write-timeout", "-1s"}, nil, `--write-timeout "-1s": must not be negative`},
		{[]string{"--lease-ttl", "1s"}, nil, `--lease-ttl "1s": must be at least 3s`},
		{[]string{"--max-message-bytes", "0"}, nil, `--max-message-bytes "0": must be 1 or more`},
		{[]string{"--max-pending", "many"}, nil, `--max-pending "many": not a whole number`},
		{[]string{"--ssl-only=maybe"}, nil, `--ssl-only "maybe"`},
		{[]string{"--no-such-flag"}, nil, `unknown flag --no-such-flag`},
		{[]string{"--listen"}, nil, `--listen needs a value`},
		{[]string{"stray"}, nil, `unexpected argument "stray"`},
		{nil, map[string]string{"CONSOLEPROXY_MAX_SESSIONS_PER_IP": "-2"}, `CONSOLEPROXY_MAX_SESSIONS_PER_IP (--max-sessions-per-ip) "-2": must be 0 or more`},
		{nil, map[string]string{"CONSOLEPROXY_DRAIN_TIMEOUT": "10"}, `(--drain-timeout) "10": a duration needs a unit`},
	} {
		env := func(k string) string { return tc.env[k] }
		_, _, err := parseFlags(tc.args, env, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: error %v, want %q", tc.args, tc.env, err, tc.want)
		}
	}
	// Good values still parse, a duration with its unit.
	o, _, err := parseFlags([]string{"--connect-timeout", "1500ms", "--max-sessions", "0", "--lease-ttl", "3s"}, noEnv, io.Discard)
	if err != nil || o.connectTimeout.Milliseconds() != 1500 || o.maxSessions != 0 || o.leaseTTL.Seconds() != 3 {
		t.Fatalf("%v %+v", err, o)
	}
}

// --help lists every flag once, in the operator's groups, as --name, with
// each duration's default carrying its unit.
func TestHelpGroupsEveryFlag(t *testing.T) {
	var out bytes.Buffer
	if _, _, err := parseFlags([]string{"--help"}, noEnv, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	help := out.String()
	var titles []string
	for _, g := range flagGroups {
		titles = append(titles, g.title)
	}
	for _, want := range []string{"Listener", "TLS", "Tokens", "Compute hosts", "Limits", "VeNCrypt toward compute hosts", "Fleet", "Admin API"} {
		if !strings.Contains(help, "\n"+want+":\n") {
			t.Errorf("--help has no %q group (groups %q)", want, titles)
		}
	}
	if strings.Contains(help, "\nOther:\n") {
		t.Errorf("a flag is in no group (add it to flagGroups):\n%s", help[strings.Index(help, "\nOther:\n"):])
	}
	names := flagNames(t)
	grouped := map[string]int{}
	for _, g := range flagGroups {
		for _, n := range g.flags {
			grouped[n]++
		}
	}
	for _, n := range names {
		if grouped[n] != 1 {
			t.Errorf("--%s is in %d groups, want 1", n, grouped[n])
		}
		if c := strings.Count(help, "\n  --"+n+" ") + strings.Count(help, "\n  --"+n+"\n"); c != 1 {
			t.Errorf("--%s appears %d times in --help", n, c)
		}
	}
	if len(grouped) != len(names) {
		t.Errorf("flagGroups names %d flags, the proxy has %d", len(grouped), len(names))
	}
	if regexp.MustCompile(`(?m)^  -[a-z]`).MatchString(help) {
		t.Error("--help shows a single-dash flag")
	}
	for _, m := range regexp.MustCompile(`--[a-z-]+ DURATION\n.*\(default ([^)]*)\)`).FindAllStringSubmatch(help, -1) {
		if !regexp.MustCompile(`^[0-9.]+(ns|µs|ms|s|m|h)([0-9.]+(ms|s|m))*$`).MatchString(m[1]) {
			t.Errorf("a duration's default without its unit: %q", m[0])
		}
	}
	if !strings.Contains(help, "--connect-timeout DURATION\n") || !strings.Contains(help, "(default 5s)") {
		t.Errorf("--connect-timeout not shown as a DURATION with default 5s:\n%s", help)
	}
}

// flagNames lists the proxy's flags.
func flagNames(t *testing.T) []string {
	t.Helper()
	var out bytes.Buffer
	if _, _, err := parseFlags([]string{"--help"}, noEnv, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatal(err)
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^  --([a-z0-9-]+)`).FindAllStringSubmatch(out.String(), -1) {
		names = append(names, m[1])
	}
	return names
}

// A mistake in a flag is reported before any lock or bind error: with the
// listen port taken and the embedded store locked by another process, a bad
// --lease-ttl (checked by config) and a bad --reuse-store (checked when the
// reuse store opens, after the token store) are what the proxy says, exit 2.
func TestFlagMistakeBeforeBindOrLock(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	held, err := tokens.OpenEmbedded(tokens.EmbeddedConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	base := []string{"--listen", ln.Addr().String(), "--metrics-listen", ln.Addr().String(),
		"--token-store", "embedded:" + dir, "--admin-listen", "unix:" + filepath.Join(dir, "admin.sock")}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--reuse-store", "file:/tmp/x"}, "--reuse-store must be"},
		{[]string{"--console-type", "rdp"}, "--console-type must be"},
		{[]string{"--max-sessions", "-1"}, "--max-sessions"},
		{[]string{"--log-format", "xml"}, `--log-format "xml"`},
	} {
		var stderr bytes.Buffer
		code := run(append(append([]string{}, base...), tc.args...), noEnv, &stderr)
		msg := stderr.String()
		if code != 2 || !strings.Contains(msg, tc.want) || strings.Contains(msg, "in use") {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q, no bind or lock error", tc.args, code, msg, tc.want)
		}
	}
	// The same port and lock with good flags: the bind or lock error, not
	// a flag's, proving the cases above really had a port and a lock to trip.
	var stderr bytes.Buffer
	if code := run(base, noEnv, &stderr); code == 0 || !strings.Contains(stderr.String(), "in use") {
		t.Errorf("good flags on a taken port and a locked store: exit %d, %q", code, stderr.String())
	}
}

// docs/contract.md, the product's reference, names every flag the proxy
// has (the contract's tables or "Flags beyond the contract").
func TestContractListsEveryFlag(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "contract.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range flagNames(t) {
		if !regexp.MustCompile("`--" + regexp.QuoteMeta(n) + "[ `]").Match(doc) {
			t.Errorf("docs/contract.md does not list --%s", n)
		}
	}
}
