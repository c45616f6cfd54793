package bench

import (
	"slices"
	"strings"
	"testing"
)

// TestSizes: a capped target's cap joins the sizes when a larger count is
// asked for, so that it is compared with the others at its cap.
func TestSizes(t *testing.T) {
	c := Config{Targets: []string{"consoleproxy", "websockify", "tcp-relay"}, Sessions: []int{1, 100, 9000}}.Defaults()
	if got, want := c.sizes(), []int{1, 100, 500, 9000}; !slices.Equal(got, want) {
		t.Fatalf("sizes %v, want %v", got, want)
	}
	notes := c.capNotes()
	if len(notes) != 1 || !strings.Contains(notes[0], "websockify") || !strings.Contains(notes[0], "[9000]") {
		t.Fatalf("cap notes %q", notes)
	}
	c.Targets = []string{"consoleproxy", "tcp-relay"}
	if got := c.sizes(); !slices.Equal(got, []int{1, 100, 9000}) {
		t.Fatalf("without websockify: sizes %v", got)
	}
}

// TestValidate names what cannot run.
func TestValidate(t *testing.T) {
	for _, c := range []Config{
		{Scenarios: []string{"nope"}},
		{Targets: []string{"nginx"}},
		{Sessions: []int{0}},
		{Params: Params{HandshakeCount: maxHandshakeCount + 1}},
		{Params: Params{HandshakeConcurrency: -1}},
	} {
		if err := c.Defaults().Validate(); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	if err := (Config{}).Defaults().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

// The TLS handshake scenarios run at their own concurrency, not --sessions;
// the TLS streams at --sessions.
func TestTLSSizes(t *testing.T) {
	c := Config{Sessions: []int{1, 100}, Params: Params{HandshakeConcurrency: 8}}.Defaults()
	if got := c.sizesOf(scenarioByName("tls-handshakes-rsa")); !slices.Equal(got, []int{8}) {
		t.Errorf("handshakes at %v, want [8]", got)
	}
	if got := c.sizesOf(scenarioByName("wss-stream-up")); !slices.Equal(got, []int{1, 100}) {
		t.Errorf("wss-stream-up at %v, want [1 100]", got)
	}
	for _, n := range TLSScenarios() {
		if sc := scenarioByName(n); sc == nil || sc.tls == nil || !isTLSScenario(n) {
			t.Errorf("%s: not found as a TLS scenario", n)
		}
	}
}

// TestMixedSplit: shares round, and a small run still has one typist.
func TestMixedSplit(t *testing.T) {
	p := Params{}.defaults()
	for _, tc := range []struct{ n, typing, burst int }{{1, 1, 0}, {2, 1, 1}, {100, 20, 10}, {9000, 1800, 900}} {
		if ty, b := mixedSplit(p, tc.n); ty != tc.typing || b != tc.burst {
			t.Errorf("n=%d: typing %d burst %d, want %d %d", tc.n, ty, b, tc.typing, tc.burst)
		}
	}
}
